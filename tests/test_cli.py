"""`kedro run` for a person: short errors a user can fix, and the summary at the end of a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.text import TextDataset

from mape_unlearn.cli import TRACEBACK_ENV, _parameter_messages
from mape_unlearn.summary import WIDTH, evaluation_lines, summary_lines
from tests.conftest import copy_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"))


def kedro_run(
    project: Path, *args: str, kedro_env: str | None = "test", **env: str
) -> subprocess.CompletedProcess:
    """A real ``kedro run --env=test …`` in ``project`` (``kedro_env=None``: no ``--env``, for
    arguments that name their own); stdout and stderr together."""
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", **env}
    environment["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    for name in ("KEDRO_ENV", *(() if TRACEBACK_ENV in env else (TRACEBACK_ENV,))):
        environment.pop(name, None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            *([f"--env={kedro_env}"] if kedro_env else []),
            *args,
        ],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


def test_a_bad_parameter_prints_its_message_and_what_to_do_without_a_traceback(project):
    result = kedro_run(project, "--pipeline=unlearn", "--params", "unlearn.lr=nan")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) < 10, result.stdout
    assert "Error: unlearn.lr='nan': Input should be greater than 0" in result.stdout
    assert "src/mape_unlearn/params.py" in result.stdout  # what to do
    assert "Traceback" not in result.stdout
    assert "deprecated" not in result.stdout  # --pipeline is the project's documented option


def test_the_traceback_variable_shows_the_full_traceback(project):
    result = kedro_run(
        project, "--pipeline=unlearn", "--params", "unlearn.lr=nan", **{TRACEBACK_ENV: "1"}
    )
    assert result.returncode != 0
    assert "Traceback" in result.stdout
    assert "greater than 0" in result.stdout


def test_a_bad_deletion_request_names_the_node_without_a_traceback(project):
    result = kedro_run(project, "--pipeline=data_prep", "--params", "data_prep.forget.ids=[p999]")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout
    error = result.stdout[result.stdout.index("Error: ") :]
    assert len(error.splitlines()) < 10, result.stdout
    words = " ".join(error.split())  # the message is wrapped to 80 columns
    assert "not in the trained-on data" in words and "(in node choose_forget)" in words
    assert "docs/troubleshooting.md" in words


def test_pydantic_text_becomes_one_line_per_parameter():
    text = (
        "Parameter validation failed:\n"
        "- Parameter 'unlearn': Failed to instantiate UnlearnSettings for parameter 'unlearn': "
        "1 validation error for UnlearnSettings\n"
        "lr\n"
        "  Input should be greater than 0 [type=greater_than, input_value='nan', "
        "input_type=str]\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/greater_than\n"
        "- Parameter 'mask_search': Failed to instantiate SearchSettings for parameter "
        "'mask_search': 1 validation error for SearchSettings\n"
        "sparsity\n"
        "  Value error, sparsity=1.5 is not allowed: expected 0 <= sparsity < 1 "
        "[type=value_error, input_value=1.5, input_type=float]\n"
    )
    assert _parameter_messages(text) == [
        "unlearn.lr='nan': Input should be greater than 0",
        "mask_search: sparsity=1.5 is not allowed: expected 0 <= sparsity < 1",
    ]


def evaluation_table(*extra: str) -> pd.DataFrame:
    columns = ["forget quality", "model utility", "forget EM", "retain EM", "MIA AUC (Min-K%)"]
    columns += ["steps to matched forgetting", "seconds", *extra]
    rows = {
        "original": [1.6e-09, 0.711, 1, 1, 1, float("nan"), float("nan")],
        "mape_forget_only": [0.494, 0.687, 0.181, 0.991, 0.476, 185, 13.8],
        "retrain": [1, 0.7, 0, 1, 0.449, float("nan"), float("nan")],
    }
    return pd.DataFrame(
        [[name, *values, *[0.5] * len(extra)] for name, values in rows.items()],
        columns=["model", *columns],
    )


@pytest.mark.parametrize("extra", [(), ("forget fact accuracy", "forget fact recall", "new")])
def test_the_evaluation_summary_fits_80_columns_and_keeps_its_columns(extra):
    lines = evaluation_lines(evaluation_table(*extra), {"stop_metric": "x", "forget_level": 0.5})
    assert max(len(line) for line in lines) <= WIDTH
    table = "\n".join(lines)
    assert "mape_forget_only   0.181   0.991" in table  # forget EM, retain EM, by name
    assert "185" in table and "1.6e-09" in table
    assert ("fact" in table) == bool(extra)  # a new column shows when the table has it
    assert "new" not in table  # columns it does not know are left to the full table


def test_the_summary_says_where_the_artifacts_are(tmp_path):
    reporting = tmp_path / "data" / "08_reporting"
    catalog = DataCatalog(
        {
            "evaluation_table_csv": CSVDataset(filepath=str(reporting / "evaluation_table.csv")),
            "evaluation_table": TextDataset(filepath=str(reporting / "evaluation_table.md")),
        }
    )
    catalog.save("evaluation_table_csv", evaluation_table())
    catalog.save("evaluation_table", "| model |\n")
    outputs = {"evaluation_table_csv", "evaluation_table"}
    lines = summary_lines(catalog, outputs, tmp_path, "abc (experiment 'x'): kedro mlflow ui")
    text = "\n".join(lines)
    assert "Full table:     data/08_reporting/evaluation_table.md (and .csv)" in text
    assert "MLflow run:     abc" in text
    assert "retrain" in text
