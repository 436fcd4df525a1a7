"""The caching runner on a small real pipeline of JSON artifacts, one case per behaviour."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro_datasets.json import JSONDataset

from mape_unlearn.caching import CachingRunner
from mape_unlearn.datasets import CacheManifestDataset

STEPS = """
def make_a(p):
    return {"value": p["x"]}


def make_b(a):
    return {"value": a["value"] + 1}


def make_c(b):
    return {"value": b["value"] * 2}


def make_d(a, q):
    return {"value": a["value"] - q["y"]}
"""


def _module(directory: Path, source: str):
    """Import ``source`` as a fresh module (a new name each time, like an edited file)."""
    path = directory / f"steps_{abs(hash(source))}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pipeline(steps) -> Pipeline:
    return Pipeline(
        [
            Node(steps.make_a, "params:p", "a", name="make_a"),
            Node(steps.make_b, "a", "b", name="make_b"),
            Node(steps.make_c, "b", "c", name="make_c"),
            Node(steps.make_d, ["a", "params:q"], "d", name="make_d"),
        ]
    )


def _catalog(root: Path, x: int = 1, y: int = 1) -> DataCatalog:
    datasets = {name: JSONDataset(filepath=str(root / f"{name}.json")) for name in "abcd"}
    return DataCatalog(
        {
            **datasets,
            "cache_manifest": CacheManifestDataset(path=str(root / "cache")),
            "params:p": MemoryDataset({"x": x}),
            "params:q": MemoryDataset({"y": y}),
        }
    )


def _run(root: Path, steps, **kwargs) -> CachingRunner:
    runner = CachingRunner(force=kwargs.pop("force", False))
    only_missing = kwargs.pop("only_missing_outputs", False)
    runner.run(_pipeline(steps), _catalog(root, **kwargs), only_missing_outputs=only_missing)
    return runner


def _ran(runner: CachingRunner) -> set[str]:
    return {name for name, entry in runner.plan.items() if entry.runs}


@pytest.fixture
def steps(tmp_path: Path):
    return _module(tmp_path, STEPS)


@pytest.fixture
def root(tmp_path: Path, steps) -> Path:
    data = tmp_path / "data"
    assert _ran(_run(data, steps)) == {"make_a", "make_b", "make_c", "make_d"}
    return data


def _value(root: Path, name: str) -> int:
    return json.loads((root / f"{name}.json").read_text())["value"]


def test_second_run_without_change_skips_every_node(root, steps):
    assert _ran(_run(root, steps)) == set()
    assert _value(root, "c") == 4


def test_changed_parameter_reruns_its_node_and_descendants_only(root, steps):
    runner = _run(root, steps, y=5)
    assert _ran(runner) == {"make_d"}
    assert runner.plan["make_d"].reasons == ["params changed: q.y"]
    assert _value(root, "d") == -4


def test_edited_function_reruns_that_node_and_its_descendants(root, steps, tmp_path):
    edited = _module(tmp_path, STEPS.replace('a["value"] + 1', 'a["value"] + 10'))
    runner = _run(root, edited)
    assert _ran(runner) == {"make_b", "make_c"}
    assert runner.plan["make_b"].reasons == ["code changed"]
    assert runner.plan["make_c"].reasons == ["input changed: b"]
    assert _value(root, "c") == 22


def test_deleted_artifact_reruns_its_producer_and_dependents(root, steps):
    (root / "b.json").unlink()
    runner = _run(root, steps)
    # b is made again with the bytes it had, so make_c (which reads only b) stays cached
    assert _ran(runner) == {"make_b"}
    assert runner.plan["make_b"].reasons == ["output missing: b"]


def test_artifact_changed_on_disk_is_recomputed_not_trusted(root, steps):
    (root / "c.json").write_text(json.dumps({"value": 999}))
    runner = _run(root, steps)
    assert _ran(runner) == {"make_c"}
    assert runner.plan["make_c"].reasons == ["output changed on disk: c"]
    assert _value(root, "c") == 4


def test_force_reruns_everything(root, steps, monkeypatch):
    assert _ran(_run(root, steps, force=True)) == {"make_a", "make_b", "make_c", "make_d"}
    monkeypatch.setenv("MAPE_UNLEARN_FORCE_RERUN", "1")
    assert _ran(_run(root, steps)) == {"make_a", "make_b", "make_c", "make_d"}


def test_only_missing_outputs_still_works(root, steps):
    (root / "d.json").unlink()
    runner = _run(root, steps, y=3, only_missing_outputs=True)
    assert _ran(runner) == {"make_d"}
    assert _value(root, "d") == -2


def test_records_are_human_readable_and_name_their_inputs(root):
    record = json.loads((root / "cache" / "d.json").read_text())
    assert record["node"] == "make_d"
    assert record["params"] == {"params:q": {"y": 1}}
    assert set(record["inputs"]) == {"a", "params:q"}
    assert len(record["digest"]) == 64


KILLED_RUN = '''
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from kedro_datasets.json import JSONDataset
import test_caching_runner as t

class KilledMidSave(JSONDataset):
    """Writes half of the file, then the process is killed (SIGKILL), as a crash would."""
    def save(self, data):
        if os.environ.get("KILL_DURING_SAVE") == self._filepath.name:
            Path(self._filepath).write_text('{{"value": ')
            os.kill(os.getpid(), signal.SIGKILL)
        super().save(data)

root = Path(sys.argv[1])
steps = t._module(Path(sys.argv[2]), t.STEPS)
catalog = t._catalog(root)
for name in "abcd":
    catalog[name] = KilledMidSave(filepath=str(root / (name + ".json")))
t.CachingRunner().run(t._pipeline(steps), catalog)
'''


def test_run_killed_during_a_save_recovers_to_the_uninterrupted_result(tmp_path):
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN.format(tests=str(Path(__file__).parent))))
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"

    def run(root: Path, kill: str | None) -> int:
        env = {**os.environ, "KILL_DURING_SAVE": kill or ""}
        return subprocess.run(
            [sys.executable, str(script), str(root), str(tmp_path)], env=env, check=False
        ).returncode

    assert run(clean, None) == 0
    assert run(interrupted, "c.json") == -9  # killed mid-save: c.json is half written
    assert (interrupted / "c.json").read_text() == '{"value": '
    assert not (interrupted / "cache" / "c.json").exists()
    assert run(interrupted, None) == 0
    for name in "abcd":
        assert (interrupted / f"{name}.json").read_text() == (clean / f"{name}.json").read_text()


def test_a_rerun_that_writes_the_same_bytes_keeps_its_consumers_cached(root, steps, tmp_path):
    """Early cut-off: make_b's code changed but not its result, so make_c is not re-run."""
    edited = _module(tmp_path, STEPS.replace('a["value"] + 1', 'a["value"] + 2 - 1'))
    runner = _run(root, edited)
    assert _ran(runner) == {"make_b"}
    assert runner.plan["make_b"].reasons == ["code changed"]
    assert _ran(_run(root, edited)) == set()


def test_an_input_no_node_makes_is_hashed_once_while_unchanged(tmp_path, monkeypatch):
    """A user's file (here a large one) is recorded by its stat signature: a second run does
    not read it; a changed file is read again and re-runs its consumer."""
    steps = _module(tmp_path, "def size(blob):\n    return {'value': len(blob)}\n")
    user_file = tmp_path / "users" / "model.bin"
    user_file.parent.mkdir()
    user_file.write_bytes(b"\0" * (8 << 20))
    reads: list[str] = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        if self == user_file and "r" in mode:
            reads.append(mode)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)

    def run() -> set[str]:
        catalog = DataCatalog(
            {
                "blob": _BytesDataset(user_file),
                "out": JSONDataset(filepath=str(tmp_path / "out.json")),
                "cache_manifest": CacheManifestDataset(path=str(tmp_path / "cache")),
            }
        )
        runner = CachingRunner()
        runner.run(Pipeline([Node(steps.size, "blob", "out", name="size")]), catalog)
        return _ran(runner)

    assert run() == {"size"}
    reads.clear()
    assert run() == set()
    assert reads == []  # neither hashed nor loaded
    user_file.write_bytes(b"\1" * (8 << 20) + b"\1")
    assert run() == {"size"}
    assert reads  # hashed again


class _BytesDataset(JSONDataset):
    """A user's binary file, read-only, behind ``_filepath`` like kedro-datasets' ones."""

    def __init__(self, path: Path) -> None:
        super().__init__(filepath=str(path))
        self._path_ = path

    def load(self) -> bytes:
        with self._path_.open("rb") as handle:
            return handle.read()


def test_atomic_writes_respect_the_umask(tmp_path):
    from safetensors.torch import save_file
    from torch import zeros

    from mape_unlearn.atomic import atomic_write_dir, atomic_write_file

    old = os.umask(0o022)
    try:
        atomic_write_file(tmp_path / "t.safetensors", lambda t: save_file({"x": zeros(1)}, t))
        atomic_write_dir(tmp_path / "m", lambda t: save_file({"x": zeros(1)}, t / "w"))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.rglob("*")}
    assert modes == {"t.safetensors": 0o644, "m": 0o755, "w": 0o644}
