"""The unlearned model in the MLflow model registry, and run names that tell runs apart.

Real ``kedro run --env=test --pipeline=unlearn`` sessions in a temp project with its own SQLite
store (the registry lives in it too): the first runs every node, the second reuses them all.
No socket may connect meanwhile: registering downloads nothing.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from transformers import AutoModelForCausalLM, AutoTokenizer

from mape_unlearn.caching.manifest import CacheManifest
from tests.test_tracking import ENV, kedro_run, make_project, session_runs, tracking_uri

PIPELINE = "unlearn"
MODEL = f"mape-unlearn-{ENV}"  # conf/base/catalog.yml: unlearned_release's registered_model_name


@dataclass(frozen=True)
class RegisteredProject:
    """A temp project after two runs of `unlearn`: ``sessions`` = [all ran, all reused]."""

    path: Path
    sessions: tuple[str, str]

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri(self.path))

    @property
    def release(self) -> Path:
        return self.path / "data/06_models/unlearned_release"

    def forget_split(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "data/03_primary/forget_split.parquet")


def no_connections(sock: socket.socket, address: object) -> None:
    raise OSError(f"a test run tried to reach {address!r}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> RegisteredProject:
    path = make_project(tmp_path_factory.mktemp("registry"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_connections)
        first = kedro_run(path, pipeline=PIPELINE)
        second = kedro_run(path, pipeline=PIPELINE)
    return RegisteredProject(path, (first, second))


def versions(client: MlflowClient) -> list[ModelVersion]:
    return client.search_model_versions(f"name = '{MODEL}'")


def expected_digest(forget: pd.DataFrame) -> str:
    """The request digest as docs/tracking.md defines it: SHA-256 of the sorted person ids."""
    return hashlib.sha256(
        "\n".join(sorted(forget.person_id.astype(str).unique())).encode()
    ).hexdigest()


# ------------------------------------------------------------------ the registered model
def test_the_registered_model_gives_the_released_models_logits(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(project.path))  # registry: the same
    (version,) = versions(project.client)
    registered = mlflow.transformers.load_model(
        f"models:/{MODEL}/{version.version}", return_type="components"
    )
    released = AutoModelForCausalLM.from_pretrained(project.release, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(project.release, local_files_only=True)
    question = project.forget_split().question.iloc[0]
    ids = tokenizer(question, return_tensors="pt").input_ids
    assert torch.equal(registered["tokenizer"](question, return_tensors="pt").input_ids, ids)
    with torch.no_grad():
        torch.testing.assert_close(registered["model"](ids).logits, released(ids).logits)


def test_the_version_is_tagged_with_the_request_and_the_run_that_made_it(project):
    client = project.client
    (version,) = versions(client)
    _, stages = session_runs(client, project.sessions[0])
    manifest = CacheManifest(project.path / "data" / "cache_manifest")
    assert version.run_id == stages["unlearn"].info.run_id
    assert version.tags == {
        "request_digest": expected_digest(project.forget_split()),
        "selector": "mape",
        "rule": "gd",
        "env": ENV,
        "kedro_session_id": project.sessions[0],
        "git_commit": stages["unlearn"].data.tags["git_commit"],
        "release_sha256": manifest.read("unlearned_release")["digest"],
    }
    assert stages["unlearn"].data.tags["registered_model_version"] == str(version.version)


def test_a_reused_release_registers_nothing_and_points_at_its_version(project):
    client = project.client
    (version,) = versions(client)  # still one, after the second run
    parent, stages = session_runs(client, project.sessions[1])
    assert stages["unlearn"].data.tags["cache"] == "reused"
    for run in (stages["unlearn"], parent):
        assert run.data.tags["registered_model"] == MODEL
        assert run.data.tags["registered_model_version"] == str(version.version)


# ------------------------------------------------------------------ run names
def test_run_names_say_pipeline_environment_request_and_method(project):
    short = expected_digest(project.forget_split())[:6]
    for session in project.sessions:
        parent, stages = session_runs(project.client, session)
        assert parent.info.run_name == f"unlearn · {ENV} · req {short} · mape/gd"
        assert parent.data.tags["request_digest"].startswith(short)
        assert stages["data_prep"].info.run_name == f"data_prep · {ENV} · req {short}"
        assert stages["unlearn"].info.run_name == f"unlearn · {ENV} · req {short} · mape/gd"


# ------------------------------------------------------------------ registration never fails a run
@pytest.fixture
def fresh_store(project: RegisteredProject, tmp_path: Path) -> Path:
    """A copy of the finished project (its cache valid) tracked in an empty store."""
    copy = Path(shutil.copytree(project.path, tmp_path / "copy", symlinks=True))
    (copy / "mlflow.db").unlink()
    shutil.rmtree(copy / "mlruns")
    return copy


@pytest.fixture
def warnings_of_project() -> Iterator[list[str]]:
    """Warnings logged by the project's loggers (a handler of its own: Kedro reconfigures root)."""
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("mape_unlearn")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_a_failing_registration_only_warns_and_the_next_run_registers(
    fresh_store: Path, monkeypatch: pytest.MonkeyPatch, warnings_of_project: list[str]
):
    def registry_down(*args: object, **kwargs: object) -> None:
        raise RuntimeError("registry down")

    monkeypatch.setattr(MlflowClient, "create_model_version", registry_down)
    failed = kedro_run(fresh_store, pipeline=PIPELINE)
    monkeypatch.undo()
    assert any(
        f"registering 'unlearned_release' as model '{MODEL}' failed" in message
        for message in warnings_of_project
    )
    client = MlflowClient(tracking_uri(fresh_store))
    _, stages = session_runs(client, failed)
    assert stages["unlearn"].info.status == "FINISHED"
    assert "registered_model" not in stages["unlearn"].data.tags

    # a release reused from the cache with no version yet is registered by the run reusing it
    reused = kedro_run(fresh_store, pipeline=PIPELINE)
    _, stages = session_runs(client, reused)
    (version,) = versions(client)
    assert stages["unlearn"].data.tags["cache"] == "reused"
    assert version.run_id == stages["unlearn"].info.run_id
