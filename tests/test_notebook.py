"""The notebook in notebooks/ runs top to bottom against a finished, tracked temp project."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.test_tracking import ENV, TrackedProject, tracked_project

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explain_run.ipynb"


@pytest.fixture(scope="module")
def executed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[nbformat.NotebookNode, TrackedProject]:
    """The notebook executed in ``<project>/notebooks`` (a kernel of this interpreter)."""
    tracked = tracked_project(tmp_path_factory)
    folder = tracked.path / "notebooks"
    folder.mkdir(exist_ok=True)
    shutil.copy(NOTEBOOK, folder)
    notebook = nbformat.read(folder / NOTEBOOK.name, as_version=4)
    with pytest.MonkeyPatch.context() as patch:  # the kernel inherits this environment
        patch.setenv("KEDRO_ENV", ENV)
        patch.setenv("MLFLOW_TRACKING_URI", tracked.tracking_uri)
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        client = NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        client.execute()
    return notebook, tracked


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list[str]:
    """Every output of ``kind`` ("text/plain", "image/png", "stream" ...) in cell order."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if kind == "stream" and output.output_type == "stream":
                found.append(output.text)
            elif kind in output.get("data", {}):
                found.append(output.data[kind])
    return found


def test_notebook_explains_the_last_run(executed):
    notebook, tracked = executed
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    printed = "".join(outputs(notebook, "stream"))
    assert "environment: test" in printed
    forget = pd.read_parquet(tracked.path / "data/03_primary/forget_split.parquet")
    assert f"forgotten: {forget.person_id.nunique()} people, {len(forget)} questions" in printed
    assert f"session {tracked.sessions[2]}" in printed
    assert len(outputs(notebook, "image/png")) == 3  # selection, search, unlearning figures
    tables = outputs(notebook, "text/html")
    assert "answer_nll" in "".join(tables)  # the metrics, per model
    lineage = tables[-1]  # lr changed: unlearn and the stages after it (evaluate, successive)
    assert lineage.count("<td>reused</td>") == 4 and lineage.count("<td>ran</td>") == 3
