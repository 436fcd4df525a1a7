"""Atomic writes for file and directory artifacts.

Everything is first written to a temporary sibling (same parent directory, so the
final rename never crosses a filesystem), named ``.<name>.tmp-<random>``, and only
then renamed onto the final path. A crash or exception mid-write therefore never
leaves a half-written artifact at the final path; on an exception the temporary
path is removed.

Files and directories get the mode a plain ``open`` or ``mkdir`` would give them
(``0o666`` / ``0o777`` less the umask), also when the writer made them private (safetensors
writes ``0o600``), so teammates sharing a disk can read the artifacts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

TMP_MARKER = ".tmp-"
OLD_MARKER = ".old-"


def _sibling(final: Path, marker: str) -> Path:
    return final.parent / f".{final.name}{marker}{secrets.token_hex(6)}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, brief)
    os.umask(mask)
    return mask


def _usual_mode(root: Path) -> None:
    """Give ``root`` and everything under it the mode of a plain ``open`` / ``mkdir``."""
    mask = _umask()
    paths = [root] if root.is_file() else [root, *root.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _fsync_path(path: Path) -> None:
    """Best-effort fsync of a file or of a directory entry table."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    if root.is_file():
        _fsync_path(root)
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def atomic_write_file(final: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` to produce a single file, then rename it onto ``final``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, TMP_MARKER)
    try:
        write(tmp)
        if not tmp.is_file():
            raise RuntimeError(f"writer did not produce a file at {tmp}")
        _usual_mode(tmp)
        _fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_path(final.parent)


def atomic_write_dir(final: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_dir)`` to fill a fresh directory, then swap it in at ``final``.

    An existing ``final`` is first moved aside to ``.<name>.old-<random>``, the new
    directory is renamed into place and only then the old one is deleted. If the swap
    fails, the old directory is moved back.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, TMP_MARKER)
    tmp.mkdir()
    try:
        write(tmp)
        _usual_mode(tmp)
        _fsync_tree(tmp)
    except BaseException:
        _remove(tmp)
        raise

    old: Path | None = None
    try:
        if final.exists() or final.is_symlink():
            old = _sibling(final, OLD_MARKER)
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        if old is not None and not final.exists():
            os.replace(old, final)
            old = None
        _remove(tmp)
        raise
    finally:
        if old is not None:
            _remove(old)
    _fsync_path(final.parent)
