"""End to end: real Kedro sessions on the small `conf/test` environment in a temp project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from mape_unlearn.caching import CachingRunner
from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.pipeline_registry import register_pipelines
from tests.conftest import copy_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's configuration with its own data folder and MLflow store."""
    return copy_project(tmp_path_factory.mktemp("project"))


def registered() -> dict[str, Pipeline]:
    """The pipelines as registered for ``--env=test`` (its methods and sweep)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEDRO_ENV", "test")
        return register_pipelines()


def run_project(project: Path, pipeline: str = "__default__", **params) -> dict[str, list[str]]:
    """One ``kedro run --env=test`` with the caching runner; the reasons of each node that ran."""
    runner = CachingRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("KEDRO_ENV", "test")  # the pipelines are registered for this environment
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env="test", runtime_params=params) as s:
            s.run(pipeline_name=pipeline, runner=runner)
    return {name: entry.reasons for name, entry in runner.plan.items() if entry.runs}


@pytest.fixture(scope="module")
def finished_run(project: Path) -> Path:
    assert len(run_project(project)) == len(registered()["__default__"].nodes)
    return project


@pytest.fixture
def project_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run (modification times kept, so cache records stay valid)."""
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy, symlinks=True)
    return copy


def test_run_produces_every_catalog_artifact(finished_run: Path):
    pipeline = registered()["__default__"]
    outputs = sorted(pipeline.all_outputs())
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(finished_run)
        with KedroSession.create(project_path=finished_run, env="test") as session:
            catalog = session.load_context().catalog
            missing = [name for name in outputs if not catalog.exists(name)]
    assert len(outputs) >= 20
    assert missing == []


def test_artifacts_are_consistent(finished_run: Path):
    data = finished_run / "data"
    forget = pd.read_parquet(data / "03_primary" / "forget_split.parquet")
    retain = pd.read_parquet(data / "03_primary" / "retain_split.parquet")
    assert set(forget.person_id).isdisjoint(retain.person_id)

    selection = load_file(data / "05_model_input" / "module_selection.safetensors")
    assert selection["heads"].dtype == torch.bool
    assert int(selection["heads"].sum()) == 1  # ceil(0.25 * 2 layers * 2 heads)
    assert int(selection["filters"].sum()) == 32  # ceil(0.25 * 2 layers * 64 filters)

    trace = json.loads((data / "08_reporting" / "search_trace.json").read_text())
    assert trace[0]["stage"] == "warm_start"
    objective = [entry["objective_filters"] for entry in trace]
    assert objective == sorted(objective)

    original = AutoModelForCausalLM.from_pretrained(data / "06_models" / "original_model")
    unlearned = AutoModelForCausalLM.from_pretrained(data / "06_models" / "unlearned_model")
    masks = module_weight_masks(original, selection["heads"], selection["filters"])
    after = dict(unlearned.named_parameters())
    for name, before in original.named_parameters():
        frozen = ~masks.get(name, torch.zeros_like(before, dtype=torch.bool))
        assert torch.equal(after[name][frozen], before[frozen]), name
    assert any(not torch.equal(after[name], p) for name, p in original.named_parameters())

    # the release: the same weights and the run's tokenizer, loadable from one directory
    release = data / "06_models" / "unlearned_release"
    released = AutoModelForCausalLM.from_pretrained(release)
    for name, weights in released.state_dict().items():
        assert torch.equal(weights, unlearned.state_dict()[name]), name
    tokenizer = AutoTokenizer.from_pretrained(release)
    assert (
        tokenizer.get_vocab()
        == AutoTokenizer.from_pretrained(data / "04_feature" / "tokenizer").get_vocab()
    )

    metrics = json.loads((data / "08_reporting" / "evaluation_metrics.json").read_text())
    baselines = {"random_modules", "full", "salun"}  # evaluate.methods of conf/base
    assert set(metrics) == {"original", "unlearned", "retrain"} | baselines
    assert (
        metrics["original"]["forget"]["answer_nll"] < metrics["unlearned"]["forget"]["answer_nll"]
    )
    assert metrics["retrain"]["comparison"]["forget_quality"] == 1.0  # KS of a model with itself
    assert metrics["full"]["cost"]["trainable_parameters"] == original.num_parameters()
    for method in baselines | {"unlearned"}:
        assert metrics[method]["cost"]["steps"] >= 1
    table = (data / "08_reporting" / "evaluation_table.md").read_text()
    assert len(table.strip().splitlines()) == 2 + len(metrics)
    csv = pd.read_csv(data / "08_reporting" / "evaluation_table.csv")
    assert list(csv["model"]) == list(metrics)
    reached = csv.set_index("model")["steps to matched forgetting"].dropna()
    costs = {m: metrics[m]["cost"] for m in reached.index}
    assert all(reached[m] <= costs[m]["steps"] for m in reached.index)


def test_sweep_and_successive_requests(finished_run: Path):
    reporting = finished_run / "data" / "08_reporting"
    sweep = pd.read_csv(reporting / "sparsity_sweep.csv")
    assert sorted(zip(sweep.method, sweep.sparsity, strict=True)) == [
        ("mape", 0.5),
        ("mape", 0.9),
        ("sa", 0.5),
        ("sa", 0.9),
    ]
    # a sparser selection leaves fewer weights to update
    for _, points in sweep.groupby("method"):
        by_sparsity = points.set_index("sparsity")["trainable_parameters"]
        assert by_sparsity[0.5] > by_sparsity[0.9]

    successive = pd.read_csv(reporting / "successive_unlearning.csv")
    assert list(successive.request.unique()) == [1, 2]
    assert set(successive.split) == {"request", "forgotten so far", "retain", "holdout"}
    metrics = json.loads((reporting / "evaluation_metrics.json").read_text())
    first = successive[(successive.request == 1) & (successive.split == "request")]
    # the first request is the forget split, unlearned from the original model
    original = metrics["original"]["forget"]["answer_token_accuracy"]
    assert first["answer_token_accuracy"].item() < original


def test_second_run_without_change_skips_every_node(project_copy: Path):
    assert run_project(project_copy, "unlearn") == {}


def test_changed_unlearn_parameter_reruns_only_unlearn_and_what_follows(project_copy: Path):
    ran = run_project(project_copy, unlearn={"lr": 0.004})
    pipelines = registered()
    later = {n.name for n in pipelines["__default__"].nodes} - {
        n.name for n in pipelines["mask_search"].nodes
    }
    assert {
        "forget_accuracy_target",
        "unlearn_model",
        "evaluate_unlearned.evaluate_model",
        "sweep_mape.sparsity_sweep",
        "successive_requests",
    } <= set(ran)
    assert set(ran) <= later  # nothing upstream of unlearning re-ran
    assert {"selection_weight_masks", "evaluate_original.evaluate_model"}.isdisjoint(ran)
    assert ran["forget_accuracy_target"] == ["params changed: unlearn.lr"]


def test_sweep_and_successive_are_stages_after_unlearn_beside_evaluate():
    pipelines = registered()
    stage = {name: {n.name for n in pipelines[name].nodes} for name in pipelines}
    for name in ("evaluate", "sweep", "successive"):
        assert stage["unlearn"] < stage[name]  # each stage brings every stage upstream of it
    assert stage["sweep"] - stage["unlearn"] == {
        "sweep_mape.sparsity_sweep",
        "sweep_sa.sparsity_sweep",
        "sweep_report",
        "plot_sweep",
    }
    assert stage["successive"] - stage["unlearn"] == {"successive_requests", "plot_successive"}
    assert stage["evaluate"].isdisjoint((stage["sweep"] | stage["successive"]) - stage["unlearn"])
    assert stage["__default__"] == stage["evaluate"] | stage["sweep"] | stage["successive"]


def test_changed_sweep_parameter_reruns_only_the_sweep(project_copy: Path):
    ran = run_project(project_copy, "sweep", sweep={"sparsities": [0.5, 0.7]})
    assert set(ran) == {"sweep_mape.sparsity_sweep", "sweep_sa.sparsity_sweep"} | {
        "sweep_report",
        "plot_sweep",
    }
    assert ran["sweep_report"] == ["input changed: mape_sparsity_sweep, sa_sparsity_sweep"]
    sweep = pd.read_csv(project_copy / "data" / "08_reporting" / "sparsity_sweep.csv")
    assert sorted(set(sweep.sparsity)) == [0.5, 0.7]


def test_new_forget_request_reuses_retain_importance_and_the_original_model(project_copy: Path):
    ran = run_project(project_copy, data_prep={"forget": {"seed": 7}})
    assert ran["choose_forget"] == ["params changed: data_prep.forget.seed"]
    reused = {"generate_qa", "hold_out", "fit_tokenizer", "original.fit"}
    reused |= {"retain_importance.mask_gradients", "retain_importance.diagonal_fisher"}
    assert reused.isdisjoint(ran)
    assert {"forget_importance.mask_gradients", "search_modules", "unlearn_model"} <= set(ran)
