"""The `study` pipeline as a CI smoke test: one run, two variants, the small `conf/test` models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mape_unlearn.caching import CachingRunner
from mape_unlearn.pipeline_registry import register_pipelines
from tests.conftest import copy_project


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("study"))
    study = project / "conf" / "base" / "parameters_study.yml"
    params = yaml.safe_load(study.read_text())
    params["study_runs"] = {"seed_3": {"forget_seed": 3}}  # one deletion request
    study.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
        patch.setenv("KEDRO_ENV", "test")
        bootstrap_project(project)
        nodes = {node.name for node in register_pipelines()["study"].nodes}
        with KedroSession.create(project_path=project, env="test") as session:
            session.run(pipeline_name="study", runner=CachingRunner())
    assert {"study_seed_3.retrain.fit", "study_seed_3.study_variants", "study_report"} <= nodes
    return project


def test_study_measures_every_variant_at_matched_forgetting(studied: Path):
    reporting = studied / "data" / "08_reporting" / "study"
    results = pd.read_csv(reporting / "results.csv")
    variants = ["mape", "sa_stop_em", "mape_holdout_answer"]  # conf/test's variants
    assert list(results.variant) == ["retrain", *variants]  # the reference's row first
    assert set(results.run) == {3}
    summary = pd.read_csv(reporting / "summary.csv")
    assert set(summary.variant) == {"retrain", *variants}
    assert (reporting / "summary.md").read_text().count("\n") == 2 + 4
    assert (reporting / "frontier.png").stat().st_size > 0

    # the run's request is its own (seed 3), not the main forget split
    forget = pd.read_parquet(
        studied / "data" / "03_primary" / "study" / "seed_3_forget_split.parquet"
    )
    main = pd.read_parquet(studied / "data" / "03_primary" / "training_split.parquet")
    assert set(forget.person_id) < set(main.person_id)

    variants = json.loads(
        (studied / "data" / "07_model_output" / "study" / "seed_3_variants.json").read_text()
    )
    retrain, mape, sa, holdout = variants
    assert retrain["variant"] == "retrain" and "trace" not in retrain
    # the holdout-target variant stops at the original's level on the holdout people
    assert holdout["target_forget_accuracy"] != mape["target_forget_accuracy"]
    # the exact-match variant traces whole answers: shares of the forget rows
    rows = len(forget)
    assert all(
        abs(e["forget_accuracy"] * rows - round(e["forget_accuracy"] * rows)) < 1e-6
        for e in sa["trace"]
        if "forget_accuracy" in e
    )
    assert mape["trainable_parameters"] > 0
    for row in variants[1:]:
        if row["reached_target"]:
            assert row["steps_to_matched_forgetting"] <= row["steps"]
