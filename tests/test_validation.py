"""Bad input stops a real Kedro run with a message naming the parameter and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import copy_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project copy (configuration only) per test, so "nothing ran" can be checked."""
    return copy_project(tmp_path / "project")


def failed_run(project: Path, pipeline: str, **params) -> str:
    """Run with bad runtime parameters; the text of the error (and its causes) it stops with."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
        bootstrap_project(project)
        with (
            KedroSession.create(project_path=project, env="test", runtime_params=params) as s,
            pytest.raises(Exception) as raised,
        ):
            s.run(pipeline_name=pipeline)
    error, texts = raised.value, []
    while error is not None:
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("pipeline", "params", "expected"),
    [
        ("mask_search", {"mask_search": {"sparsity": 1.5}}, "sparsity=1.5 is not allowed"),
        (
            "mask_search",
            {"mask_search": {"objective": "best"}},
            "'forget_only', 'forget_retain' or 'ratio'",
        ),
        ("mask_search", {"mask_search": {"quota": "layers"}}, "'global' or 'per_layer'"),
        (
            "unlearn",
            {"unlearn": {"rule": "xx"}},
            "'ga', 'gd', 'npo', 'so', 'bounded', 'match' or 'sharp_minmax'",
        ),
        ("unlearn", {"unlearn": {"lr": -1.0}}, "greater than 0"),
        ("train", {"train": {"epochs": 0}}, "greater than 0"),
    ],
)
def test_bad_parameters_stop_the_run_before_any_node(project, pipeline, params, expected):
    message = failed_run(project, pipeline, **params)
    assert expected in message
    assert not (project / "data" / "01_raw" / "qa_dataset.parquet").exists()  # nothing ran


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"ids": ["p999"]}, "not in the trained-on data"),
        ({"ids": []}, "forget.ids=[] is not allowed"),
    ],
)
def test_a_bad_deletion_request_is_named(project, params, expected):
    assert expected in failed_run(project, "data_prep", data_prep={"forget": params})


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_an_unavailable_device_is_named(project):
    message = failed_run(project, "train", train={"device": "cuda"})
    assert "device='cuda' is not available: no CUDA device" in message
