"""The Kedro project bootstraps, and kedro-mlflow picks up conf/base/mlflow.yml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from kedro.framework.project import settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mape_unlearn.settings import config_loader

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tracking_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throw-away MLflow store; telemetry off; MLflow's global URI reset afterwards."""
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db.as_posix()}")
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    yield db
    # kedro-mlflow calls mlflow.set_tracking_uri(); undo it before monkeypatch
    # restores the environment.
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_bootstrap_metadata() -> None:
    metadata = bootstrap_project(PROJECT_ROOT)
    assert metadata.package_name == "mape_unlearn"
    assert metadata.project_name == "mape-unlearn"
    assert metadata.kedro_init_version == "1.7.0"
    assert settings.CONFIG_LOADER_ARGS["default_run_env"] == "local"


def test_session_loads_mlflow_config(tracking_db: Path) -> None:
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(project_path=PROJECT_ROOT, env="test") as session:
        context = session.load_context()
        mlflow_conf = context.config_loader["mlflow"]
        assert mlflow_conf["server"]["mlflow_tracking_uri"] == f"sqlite:///{tracking_db}"
        assert mlflow_conf["tracking"]["experiment"]["name"] == "mape-unlearn"
        # kedro-mlflow's after_context_created hook has set MLflow up on that store
        assert context.mlflow.server.mlflow_tracking_uri == f"sqlite:///{tracking_db}"
        assert mlflow.get_tracking_uri() == f"sqlite:///{tracking_db}"
        assert tracking_db.is_file()
        assert mlflow.get_experiment_by_name("mape-unlearn") is not None


def test_default_tracking_uri_is_project_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MLFLOW_TRACKING_URI the store is <project root>/mlflow.db (absolute)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bootstrap_project(PROJECT_ROOT)
    loader = config_loader(PROJECT_ROOT / settings.CONF_SOURCE, env="test")
    uri = loader["mlflow"]["server"]["mlflow_tracking_uri"]
    assert uri == f"sqlite:///{(PROJECT_ROOT / 'mlflow.db').as_posix()}"
