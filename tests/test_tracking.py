"""MLflow lineage of real ``kedro run``s on conf/test, in a temp project with its own store.

One temp project is run three times (all stages run; nothing changed; ``unlearn.lr`` changed)
and every test reads the runs back through ``MlflowClient``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from filelock import FileLock
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from mlflow import MlflowClient
from mlflow.entities import Run
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from mape_unlearn.caching import CachingRunner
from mape_unlearn.caching.manifest import CacheManifest
from mape_unlearn.pipeline_registry import STAGES, register_pipelines
from mape_unlearn.settings import config_loader
from mape_unlearn.tracking.git import git_commit
from mape_unlearn.tracking.recorded import Recording, recording
from mape_unlearn.tracking.values import MetricPoint, flat_params, metric_points
from tests.conftest import copy_project

ROOT = Path(__file__).resolve().parents[1]
ENV = "test"


# ------------------------------------------------------------------ the shared temp project
@dataclass(frozen=True)
class TrackedProject:
    """A temp project after three runs: ``sessions`` = [all ran, nothing changed, lr changed]."""

    path: Path
    sessions: tuple[str, str, str]

    @property
    def tracking_uri(self) -> str:
        return tracking_uri(self.path)


def tracking_uri(project: Path) -> str:
    return f"sqlite:///{(project / 'mlflow.db').as_posix()}"


def make_project(path: Path) -> Path:
    """A copy of the project's configuration with its own data folder and MLflow store.

    The evaluation compares no baselines and sweeps nothing here (``evaluate.methods: []``,
    ``sweep.methods: []``): tracking does not depend on them, and the run stays short.
    """
    copy_project(path)
    base = yaml.safe_load((ROOT / "conf" / "base" / "parameters_evaluate.yml").read_text())
    if "methods" in base.get("evaluate", {}):
        test_params = path / "conf" / ENV / "parameters.yml"
        params = yaml.safe_load(test_params.read_text()) or {}
        params.setdefault("evaluate", {})["methods"] = []
        params.setdefault("sweep", {})["methods"] = []
        test_params.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def kedro_run(
    project: Path, uri: str | None = None, pipeline: str | None = None, **params: object
) -> str:
    """One ``kedro run --env=test [--pipeline=<pipeline>]`` with the caching runner, tracked in
    ``uri``; its session id."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", uri or tracking_uri(project))
        patch.setenv("KEDRO_ENV", ENV)  # the pipelines are registered for this environment
        bootstrap_project(project)
        names = [pipeline] if pipeline else None
        try:
            with KedroSession.create(project_path=project, env=ENV, runtime_params=params) as s:
                s.run(runner=CachingRunner(), pipeline_names=names)
                return s.session_id
        finally:
            mlflow.set_tracking_uri(None)  # kedro-mlflow sets it process-wide


def project_pipeline(project: Path) -> Pipeline:
    """The ``__default__`` pipeline as registered for the project's configuration."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("KEDRO_ENV", ENV)
        return register_pipelines()["__default__"]


def project_stages(project: Path) -> list[str]:
    """The stages with nodes in the project's ``__default__`` (`sweep` has none here)."""
    pipeline = project_pipeline(project)
    return [stage for stage in STAGES if any(stage in node.tags for node in pipeline.nodes)]


def tracked_project(tmp_path_factory: pytest.TempPathFactory) -> TrackedProject:
    """The three-run project, made once per test session: the first test process to ask builds
    it, under a lock, in the session's temp folder that every xdist worker shares; the others
    (the notebook and viz tests, often on the other worker) read it. They only read it, and
    write apart (``notebooks/``, ``build/``)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # <session>/popen-gwN -> <session>
    record = shared / "tracked_project.json"
    with FileLock(f"{record}.lock"):
        if not record.exists():
            path = make_project(shared / "tracked")
            sessions = [kedro_run(path), kedro_run(path), kedro_run(path, unlearn={"lr": 0.004})]
            record.write_text(json.dumps({"path": str(path), "sessions": sessions}))
    made = json.loads(record.read_text())
    return TrackedProject(Path(made["path"]), tuple(made["sessions"]))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> TrackedProject:
    return tracked_project(tmp_path_factory)


@pytest.fixture(scope="module")
def client(tracked: TrackedProject) -> MlflowClient:
    return MlflowClient(tracked.tracking_uri)


def session_runs(client: MlflowClient, session_id: str) -> tuple[Run, dict[str, Run]]:
    """The parent run of a Kedro session and its stage runs by stage name."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.kedro_session_id = '{session_id}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = [run for run in runs if run not in parents]
    stages = {run.data.tags["stage"]: run for run in children}
    assert len(stages) == len(children)
    return parents[0], stages


def artifacts(client: MlflowClient, run: Run) -> set[str]:
    return {item.path for item in client.list_artifacts(run.info.run_id)}


def history(client: MlflowClient, run: Run, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


# ------------------------------------------------------------------ one run, all stages ran
def test_every_node_belongs_to_exactly_one_stage():
    for node in register_pipelines()["__default__"].nodes:
        assert len(node.tags & set(STAGES)) == 1, node.name


def test_each_run_is_a_parent_with_one_nested_run_per_stage(client, tracked):
    for session in tracked.sessions:
        parent, stages = session_runs(client, session)
        assert set(stages) == set(project_stages(tracked.path))
        for run in stages.values():
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            # the stage, the environment, the deletion request (test_model_registry: in full)
            assert run.info.run_name.startswith(f"{run.data.tags['stage']} · {ENV} · req ")
            assert run.info.status == "FINISHED"
            assert run.data.tags["git_commit"] == git_commit(tracked.path)  # no repo: "unknown"
        assert parent.info.status == "FINISHED"


def test_first_run_stages_ran_with_their_cache_keys(client, tracked):
    parent, stages = session_runs(client, tracked.sessions[0])
    manifest = CacheManifest(tracked.path / "data" / "cache_manifest")
    pipeline = project_pipeline(tracked.path)
    for stage, run in stages.items():
        tags = run.data.tags
        assert tags["cache"] == "ran"
        assert "reused_from" not in tags
        nodes = [node for node in pipeline.nodes if stage in node.tags]
        assert tags["nodes_ran"].split(",") == [node.name for node in nodes]
        assert len(tags["cache_key"]) == 64
        # stages that did not re-run later still have the first run's records on disk
        if stage not in ("unlearn", "evaluate", "successive"):
            for node in nodes:
                record = manifest.read(node.outputs[0])
                assert tags[f"cache_key.{node.name}"] == record["node_key"]
                assert record["run_id"] == tracked.sessions[0]
    assert parent.data.tags["stages_ran"].split(",") == project_stages(tracked.path)


def test_stage_runs_carry_their_own_parameters(client, tracked):
    _, first = session_runs(client, tracked.sessions[0])
    _, third = session_runs(client, tracked.sessions[2])
    unlearn = first["unlearn"].data.params
    assert unlearn["unlearn.lr"] == "0.002"
    assert third["unlearn"].data.params["unlearn.lr"] == "0.004"
    assert {key.split(".")[0] for key in unlearn} == {"unlearn"}
    assert first["train"].data.params["train.epochs"] == "40"  # conf/test
    assert first["data_prep"].data.params["data_prep.forget.fraction"] == "0.2"
    assert first["mask_search"].data.params["mask_search.sparsity"] == "0.75"
    assert "importance.batch_size" in first["importance"].data.params


def test_curves_are_metrics_with_steps(client, tracked):
    reporting = tracked.path / "data" / "08_reporting"
    _, stages = session_runs(client, tracked.sessions[2])  # whose unlearning trace is on disk
    trace = json.loads((reporting / "unlearning_trace.json").read_text())
    steps = [entry for entry in trace if "forget_loss" in entry]  # all but step 0 (no step yet)
    assert trace[0]["step"] == 0 and len(steps) == len(trace) - 1
    assert history(client, stages["unlearn"], "forget_loss") == [
        (entry["step"], pytest.approx(entry["forget_loss"])) for entry in steps
    ]
    assert len(history(client, stages["unlearn"], "retain_loss")) == len(steps)
    checked = [entry["step"] for entry in trace if "forget_accuracy" in entry]
    assert [step for step, _ in history(client, stages["unlearn"], "forget_accuracy")] == checked

    search = json.loads((reporting / "search_trace.json").read_text())
    assert history(client, stages["mask_search"], "objective_filters") == [
        (sweep, pytest.approx(entry["objective_filters"])) for sweep, entry in enumerate(search)
    ]
    epochs = history(client, stages["train"], "original/answer_nll_per_epoch")
    assert [step for step, _ in epochs] == list(range(1, 41))


def test_evaluation_metrics_are_flattened_on_the_stage_and_the_parent(client, tracked):
    metrics = json.loads((tracked.path / "data/08_reporting/evaluation_metrics.json").read_text())
    expected = {point.key: point.value for point in metric_points(metrics)}
    assert "unlearned/forget/answer_nll" in expected
    parent, stages = session_runs(client, tracked.sessions[2])
    for run in (stages["evaluate"], parent):
        logged = run.data.metrics
        assert {key: logged[key] for key in expected} == pytest.approx(expected, nan_ok=True)


def test_artifacts_of_each_stage(client, tracked):
    _, stages = session_runs(client, tracked.sessions[0])
    assert {"forget_split.parquet", "tokenizer"} <= artifacts(client, stages["data_prep"])
    assert {"forget_fisher.safetensors", "retain_fisher.safetensors"} <= artifacts(
        client, stages["importance"]
    )
    assert {
        "module_selection.safetensors",
        "selected_modules.json",
        "search_trace.json",
        "module_selection.png",
        "search_objective.png",
    } <= artifacts(client, stages["mask_search"])
    assert {"unlearning_trace.json", "unlearning_losses.png"} <= artifacts(
        client, stages["unlearn"]
    )
    assert {"evaluation_table.md", "evaluation_metrics.json"} <= artifacts(
        client, stages["evaluate"]
    )
    logged = set().union(*(artifacts(client, run) for run in stages.values()))
    # no model is copied: the unlearned one is the registered release (test_model_registry)
    assert {
        "original_model",
        "retrain_model",
        "unlearned_model",
        "unlearned_release",
        "forget_mask_gradients.safetensors",
    }.isdisjoint(logged)

    summary = client.download_artifacts(stages["mask_search"].info.run_id, "selected_modules.json")
    selection = load_file(tracked.path / "data/05_model_input/module_selection.safetensors")
    heads = json.loads(Path(summary).read_text())["heads"]
    assert heads == selection["heads"].nonzero().tolist()


def test_unlearned_model_loads_back_from_the_version_its_stage_run_names(client, tracked):
    _, stages = session_runs(client, tracked.sessions[2])  # whose model is on disk
    tags = stages["unlearn"].data.tags
    version = client.get_model_version(tags["registered_model"], tags["registered_model_version"])
    assert version.run_id == stages["unlearn"].info.run_id
    source = client.get_model_version_download_uri(version.name, version.version)
    path = mlflow.artifacts.download_artifacts(  # the MLflow model's weights: model/
        artifact_uri=f"{source}/model", tracking_uri=tracked.tracking_uri
    )
    logged = AutoModelForCausalLM.from_pretrained(path).state_dict()
    local = AutoModelForCausalLM.from_pretrained(tracked.path / "data/06_models/unlearned_model")
    assert logged.keys() == local.state_dict().keys()
    assert all(torch.equal(logged[name], p) for name, p in local.state_dict().items())


def test_forget_and_retain_splits_are_dataset_inputs(client, tracked):
    parent, stages = session_runs(client, tracked.sessions[0])
    manifest = CacheManifest(tracked.path / "data" / "cache_manifest")
    for run in (stages["data_prep"], parent):
        inputs = {item.dataset.name: item for item in run.inputs.dataset_inputs}
        assert set(inputs) == {"forget_split", "retain_split"}
        for name, item in inputs.items():
            frame = pd.read_parquet(tracked.path / "data/03_primary" / f"{name}.parquet")
            assert item.dataset.digest == mlflow.data.from_pandas(frame).digest
            tags = {tag.key: tag.value for tag in item.tags}
            assert tags["mlflow.data.context"] == name.removesuffix("_split")
            assert tags["sha256"] == manifest.read(name)["digest"]
    forget = pd.read_parquet(tracked.path / "data/03_primary/forget_split.parquet")
    assert stages["data_prep"].data.metrics["people/forget_split"] == forget.person_id.nunique()


# ------------------------------------------------------------------ reuse lineage
def test_second_run_reuses_every_stage_and_points_at_the_first(client, tracked):
    _, first = session_runs(client, tracked.sessions[0])
    parent, second = session_runs(client, tracked.sessions[1])
    for stage, run in second.items():
        tags = run.data.tags
        assert tags["cache"] == "reused"
        assert tags["reused_from"] == first[stage].info.run_id
        assert tags["reused_from_session"] == tracked.sessions[0]
        assert tags["cache_key"] == first[stage].data.tags["cache_key"]
        assert tags["nodes_ran"] == ""
        assert run.data.params == first[stage].data.params
        assert artifacts(client, run) == set()  # they stay with the run that produced them
    assert parent.data.tags["stages_reused"].split(",") == project_stages(tracked.path)
    assert parent.data.params["unlearn.lr"] == "0.002"  # complete although no node ran


def test_changed_parameter_reruns_unlearn_and_evaluate_and_reuses_the_rest(client, tracked):
    _, first = session_runs(client, tracked.sessions[0])
    _, third = session_runs(client, tracked.sessions[2])
    cache = {stage: run.data.tags["cache"] for stage, run in third.items()}
    assert cache == {
        "data_prep": "reused",
        "train": "reused",
        "importance": "reused",
        "mask_search": "reused",
        "unlearn": "ran",
        "evaluate": "ran",
        "successive": "ran",
    }
    for stage in ("data_prep", "train", "importance", "mask_search"):
        assert third[stage].data.tags["reused_from"] == first[stage].info.run_id
    assert third["unlearn"].data.tags["cache_key"] != first["unlearn"].data.tags["cache_key"]


# ------------------------------------------------------------------ tracking never fails a run
@pytest.fixture
def project_copy(tracked: TrackedProject, tmp_path: Path) -> Path:
    """A copy of the finished project (modification times kept: cache records stay valid)."""
    return Path(shutil.copytree(tracked.path, tmp_path / "copy", symlinks=True))


@pytest.fixture
def warnings_of_project() -> Iterator[list[logging.LogRecord]]:
    """Warnings logged by the project's loggers (a handler of its own: Kedro reconfigures root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mape_unlearn")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_a_failing_tracking_store_does_not_fail_the_run(
    project_copy: Path, warnings_of_project: list[logging.LogRecord]
):
    broken = project_copy / "not_a_directory"
    broken.write_text("")
    kedro_run(project_copy, uri=f"sqlite:///{broken.as_posix()}/mlflow.db")
    assert any("kedro-mlflow after_context_created" in r.getMessage() for r in warnings_of_project)


def test_a_failing_stage_record_does_not_fail_the_run(
    project_copy: Path,
    warnings_of_project: list[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
):
    def store_down(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracking store down")

    monkeypatch.setattr(MlflowClient, "search_runs", store_down)
    session = kedro_run(project_copy)
    monkeypatch.undo()
    _, stages = session_runs(MlflowClient(tracking_uri(project_copy)), session)
    statuses = {stage: run.info.status for stage, run in stages.items()}
    assert set(statuses.values()) <= {"FAILED", "FINISHED"}  # closed, not left running
    # a stage with nodes from an earlier session looks their runs up, which fails; `successive`
    # re-ran whole (unlearn.lr back to its default), so it looks nothing up
    assert {stage for stage, status in statuses.items() if status == "FINISHED"} == {"successive"}
    assert any("tracking store down" in r.getMessage() for r in warnings_of_project)


def test_conf_local_mlflow_yml_chooses_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = make_project(tmp_path / "project")
    other = tmp_path / "elsewhere.db"
    local = project / "conf" / "local" / "mlflow.yml"
    local.write_text(f"server:\n  mlflow_tracking_uri: sqlite:///{other.as_posix()}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project) as session:  # environment "local"
            assert session.load_context().mlflow.server.mlflow_tracking_uri == f"sqlite:///{other}"
    finally:
        mlflow.set_tracking_uri(None)
    assert other.is_file()


# ------------------------------------------------------------------ building blocks
def test_metric_points_keep_series_steps():
    points = list(
        metric_points(
            {
                "history": {"nll": [3.0, 2.0]},
                "trace": [{"step": 5, "loss": 1.0, "note": "x"}, {"loss": 0.5}],
                "model": {"split": {"acc": 0.9, "done": True}},
            }
        )
    )
    assert points == [
        MetricPoint("history/nll", 3.0, 1),
        MetricPoint("history/nll", 2.0, 2),
        MetricPoint("trace/loss", 1.0, 5),
        MetricPoint("trace/loss", 0.5, 1),
        MetricPoint("model/split/acc", 0.9, 0),
    ]


def test_flat_params_are_dotted_and_cut_to_mlflow_limits():
    params = flat_params({"unlearn": {"lr": 0.001, "ids": ["p1", "p2"]}, "long": "x" * 7000})
    assert params["unlearn.lr"] == "0.001"
    assert params["unlearn.ids"] == "['p1', 'p2']"
    assert len(params["long"]) == 6000


def test_the_catalog_declares_what_each_output_records():
    """Patterns fill their placeholders in; a model is never copied, whatever its entry says."""
    catalog = DataCatalog.from_config(config_loader(ROOT / "conf", env=ENV)["catalog"])
    assert recording(catalog, "retrain_training_history") == Recording(metrics="retrain")
    assert recording(catalog, "forget_split") == Recording(input="forget", request="person_id")
    assert recording(catalog, "retain_split") == Recording(artifact=False, input="retain")
    assert not recording(catalog, "holdout_split").artifact
    assert recording(catalog, "evaluation_metrics") == Recording(metrics="", parent_metrics=True)
    assert recording(catalog, "original_model") == Recording(artifact=False)
    assert recording(catalog, "a_memory_output") == Recording()


def test_a_misspelt_declaration_is_refused():
    catalog = DataCatalog({"report": MemoryDataset(metadata={"mlflow": {"metric": "x"}})})
    with pytest.raises(ValueError, match=r"'report' has \['metric'\]: expected keys from"):
        recording(catalog, "report")


def test_git_commit_inside_and_outside_a_repository(tmp_path: Path):
    assert git_commit(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert git_commit(tmp_path) == head.stdout.strip()
