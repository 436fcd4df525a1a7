"""A save that fails or is killed half way leaves the previous file whole, for every file type
of the catalog (kedro-datasets' own types truncate it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest
import yaml
from fsspec.implementations.local import LocalFileOpener
from kedro.io import DatasetError
from kedro_datasets.json import JSONDataset
from matplotlib.figure import Figure

from mape_unlearn import datasets
from mape_unlearn.datasets import AtomicJSONDataset

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


def figure(title: str) -> Figure:
    drawn = Figure(figsize=(2, 2))
    drawn.add_subplot().set_title(title)
    return drawn


# each type with its file name, two different values and how a loaded value is compared
CASES = {
    "AtomicJSONDataset": ("a.json", {"step": [1, 2, 3]}, {"step": [4] * 500}, lambda v: v),
    "AtomicParquetDataset": (
        "a.parquet",
        pd.DataFrame({"x": [1, 2]}),
        pd.DataFrame({"x": range(500)}),
        lambda v: v.to_dict("list"),
    ),
    "AtomicCSVDataset": (
        "a.csv",
        pd.DataFrame({"x": [1, 2]}),
        pd.DataFrame({"x": range(500)}),
        lambda v: v.to_dict("list"),
    ),
    "AtomicTextDataset": ("a.md", "| old |\n", "| new |\n" * 500, lambda v: v),
    "AtomicMatplotlibDataset": ("a.png", figure("old"), figure("new"), None),
}


def half_then(fail: Any) -> Any:
    """A file write that writes half its bytes, flushes them, then calls ``fail``."""

    def write(self: LocalFileOpener, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        return fail()

    return write


def disk_full() -> int:
    raise OSError("no space left on device")


@pytest.mark.parametrize("kind", CASES)
def test_a_save_failing_half_way_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    name, old, new, value = CASES[kind]
    dataset = getattr(datasets, kind)(filepath=str(tmp_path / name))
    dataset.save(old)
    before = (tmp_path / name).read_bytes()
    monkeypatch.setattr(LocalFileOpener, "write", half_then(disk_full))
    with pytest.raises((DatasetError, OSError), match="no space left"):
        dataset.save(new)
    monkeypatch.undo()
    assert (tmp_path / name).read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == [name]  # no temporary file left
    if value is not None:
        assert value(dataset.load()) == value(old)
    dataset.save(new)  # and a save that completes replaces it
    assert (tmp_path / name).read_bytes() != before


def test_kedro_datasets_own_save_truncates_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the project's datasets prevent (the same failure as above)."""
    dataset = JSONDataset(filepath=str(tmp_path / "a.json"))
    dataset.save({"step": [1, 2, 3]})
    monkeypatch.setattr(LocalFileOpener, "write", half_then(disk_full))
    with pytest.raises(DatasetError):
        dataset.save({"step": [4] * 500})
    monkeypatch.undo()
    with pytest.raises(json.JSONDecodeError):
        json.loads((tmp_path / "a.json").read_text())


KILLED_SAVE = """
import os, signal, sys
from fsspec.implementations.local import LocalFileOpener
from mape_unlearn.datasets import AtomicJSONDataset
from tests.datasets.test_atomic_writes import half_then

LocalFileOpener.write = half_then(lambda: os.kill(os.getpid(), signal.SIGKILL))
AtomicJSONDataset(filepath=sys.argv[1]).save({"step": [4] * 500})
"""


def test_a_save_killed_half_way_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    AtomicJSONDataset(filepath=str(path)).save({"step": [1, 2, 3]})
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_SAVE), str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr  # SIGKILL, mid-write
    assert AtomicJSONDataset(filepath=str(path)).load() == {"step": [1, 2, 3]}
    half = [p for p in tmp_path.iterdir() if p != path]  # what the killed save left behind
    assert len(half) == 1 and half[0].name.startswith(".trace.json.tmp-")
    with pytest.raises(json.JSONDecodeError):
        json.loads(half[0].read_text())


def test_every_file_the_catalog_writes_is_saved_by_a_project_dataset() -> None:
    """The project's datasets are atomic; the one other type is a file read, never written."""
    types = {
        (name, entry["type"])
        for path in (ROOT / "conf").glob("*/catalog*.yml")
        for name, entry in yaml.safe_load(path.read_text()).items()
        if isinstance(entry, dict) and "type" in entry
    }
    assert len(types) > 20
    others = {(name, kind) for name, kind in types if not kind.startswith("mape_unlearn.")}
    assert others == {("world_facts_source", "pandas.JSONDataset")}
