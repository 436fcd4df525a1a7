"""End to end without a retrain model: the holdout people's level is the target (conf/test)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project
from tests.test_run import registered, run_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conf/test with ``train.retrain: false`` and ``unlearn.target: holdout``."""
    project = copy_project(tmp_path_factory.mktemp("holdout_target"))
    path = project / "conf" / "test" / "parameters.yml"
    params = yaml.safe_load(path.read_text())
    params["train"]["retrain"] = False
    params["unlearn"]["target"] = "holdout"
    params["evaluate"] = {"methods": ["salun"]}
    path.write_text(yaml.safe_dump(params))
    return project


def test_evaluate_runs_without_a_retrain_model(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(project)  # registration reads this project's configuration
    pipeline = registered()["evaluate"]
    assert not any("retrain" in name for name in pipeline.all_outputs())
    ran = run_project(project, "evaluate")
    assert "forget_accuracy_target" in ran and "retrain.fit" not in ran

    data = project / "data"
    target = json.loads((data / "05_model_input" / "unlearning_target.json").read_text())
    assert target["target"] == "holdout" and 0.0 <= target["forget_level"] < 1.0
    metrics = json.loads((data / "08_reporting" / "evaluation_metrics.json").read_text())
    assert set(metrics) == {"original", "unlearned", "salun"}
    for model in metrics.values():
        assert math.isnan(model["comparison"]["forget_quality"])  # no reference to compare with
        assert 0.0 <= model["comparison"]["mia_auc_min_k"] <= 1.0  # forget vs holdout people
        assert 0.0 <= model["forget"]["fact_accuracy"] <= 1.0
    cost = metrics["unlearned"]["cost"]
    assert cost["target_forget_accuracy"] == pytest.approx(target["forget_level"])
    table = (data / "08_reporting" / "evaluation_table.md").read_text()
    assert "forget quality is NaN" in table and "train.retrain: false" in table


def test_a_retrain_target_without_a_retrain_model_is_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    path = project / "conf" / "test" / "parameters.yml"
    params = yaml.safe_load(path.read_text())
    params["unlearn"]["target"] = "retrain"
    monkeypatch.chdir(project)
    original = path.read_text()
    try:
        path.write_text(yaml.safe_dump(params))
        with pytest.raises(ValueError, match="unlearn.target='retrain' is not allowed"):
            registered()
    finally:
        path.write_text(original)
