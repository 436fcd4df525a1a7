"""Fingerprints that decide whether a node's result is still valid.

* code: the source of the node function and of every project function or class it reaches
  through its globals, so editing a helper in ``core/`` invalidates the nodes that call it;
* values: resolved parameter values, as canonical JSON;
* artifacts: the bytes of a file or of every file under a directory. A cheap stat signature
  (sizes and modification times) lets an unchanged artifact skip the hashing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PROJECT_PACKAGE = "mape_unlearn"
_PLAIN = (str, int, float, bool, type(None), tuple, list, dict, frozenset)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _in_project(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    return module == PROJECT_PACKAGE or module.startswith(PROJECT_PACKAGE + ".")


def _names(code: types.CodeType) -> Iterator[str]:
    """Global and attribute names a code object (and its nested functions) refers to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _codes(obj: Any) -> Iterator[tuple[types.CodeType, dict[str, Any]]]:
    """Code objects with their globals: a function's own, or every method of a class."""
    if inspect.isfunction(obj):
        yield obj.__code__, obj.__globals__
    elif inspect.isclass(obj):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                yield member.__code__, member.__globals__


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return repr(obj)


# a function's or class's source, read once per process: the nodes of a pipeline reach the same
# helpers, and ``inspect.getsource`` tokenizes their file again on every call
_definition_source = functools.cache(_source)


def code_fingerprint(func: Callable[..., Any]) -> str:
    """Hash of ``func``'s source and the source of project code it can reach."""
    parts: list[str] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        obj = inspect.unwrap(obj)
        if id(obj) in seen:
            return
        seen.add(id(obj))
        defined = inspect.isfunction(obj) or inspect.isclass(obj)
        parts.append(_definition_source(obj) if defined else _source(obj))
        for code, namespace in _codes(obj):
            names = list(_names(code))
            for name in names:
                if name not in namespace:
                    continue
                target = namespace[name]
                if inspect.ismodule(target) and _in_project(target):
                    for attribute in names:  # ``module.function`` references
                        member = getattr(target, attribute, None)
                        if member is not None and _in_project(member):
                            visit(member)
                elif (inspect.isfunction(target) or inspect.isclass(target)) and _in_project(
                    target
                ):
                    visit(target)
                elif _in_project(obj) and _is_data(target):
                    parts.append(f"{name}={target!r}")

    visit(func)
    return sha256("\n".join(parts))


def _is_data(value: Any) -> bool:
    return isinstance(value, _PLAIN) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def jsonable(value: Any) -> Any:
    """Parameter values as plain JSON (typed parameter models and settings objects included)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    return repr(value)


def value_fingerprint(value: Any) -> str:
    return sha256(json.dumps(jsonable(value), sort_keys=True))


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def stat_signature(path: Path) -> dict[str, list[int]]:
    """Size and modification time of every file of an artifact, by relative path."""
    root = path if path.is_dir() else path.parent
    signature = {}
    for file in _files(path):
        stat = file.stat()
        signature[file.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return signature


def artifact_digest(path: Path) -> str:
    """SHA-256 over the relative names and bytes of every file of an artifact."""
    root = path if path.is_dir() else path.parent
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
