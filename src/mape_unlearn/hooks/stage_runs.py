"""One job: a nested MLflow run per stage under kedro-mlflow's parent run."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Node, Pipeline

from mape_unlearn.stages import STAGES

if TYPE_CHECKING:
    from mape_unlearn.tracking import StageRuns

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])


def _never_fails(method: F) -> F:
    """A tracking failure logs a warning and stops tracking this run; the run itself goes on."""

    @functools.wraps(method)
    def guarded(self: TrackStages, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as error:  # tracking must never fail the user's run
            log.warning(
                "MLflow stage tracking off for this run: %s failed: %r", method.__name__, error
            )
            stage_runs, self.stage_runs = self.stage_runs, None
            if stage_runs is not None:
                stage_runs.fail()  # close what was opened; it only warns on failure

    return guarded  # type: ignore[return-value]


class TrackStages:
    """One nested MLflow run per stage under kedro-mlflow's run (see ``mape_unlearn.tracking``),
    each run named by what tells it apart, and the released model registered.

    kedro-mlflow opens the parent run in its ``before_pipeline_run``; this hook runs after it
    (``trylast``), and writes its stage runs before kedro-mlflow ends the parent (``tryfirst``).
    Without an active MLflow run (tracking disabled for the pipeline) it does nothing.
    """

    def __init__(self) -> None:
        self.stage_runs: StageRuns | None = None  # those of the current run

    @hook_impl(trylast=True)
    @_never_fails
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self.stage_runs = None
        parent = mlflow.active_run()
        if parent is None:
            return
        # imported here: tracking pulls in pandas and MLflow's client, which settings need not
        from mape_unlearn.tracking import StageRuns, run_names

        self.stage_runs = StageRuns(
            client=mlflow.MlflowClient(mlflow.get_tracking_uri()),
            parent_id=parent.info.run_id,
            session_id=run_params["run_id"],
            project_path=Path(run_params["project_path"]),
            stages=STAGES,
            names=run_names(run_params, pipeline, catalog, STAGES),
        )

    @hook_impl
    @_never_fails
    def before_node_run(self, node: Node) -> None:
        if self.stage_runs is not None:
            self.stage_runs.node_started(node)

    @hook_impl
    @_never_fails
    def after_node_run(self, node: Node) -> None:
        if self.stage_runs is not None:
            self.stage_runs.node_finished(node)

    @hook_impl(tryfirst=True)
    @_never_fails
    def after_pipeline_run(self, pipeline: Pipeline, catalog: CatalogProtocol) -> None:
        if self.stage_runs is not None:
            self.stage_runs.finish(pipeline, catalog)
        self.stage_runs = None

    @hook_impl(tryfirst=True)
    @_never_fails
    def on_pipeline_error(self) -> None:
        if self.stage_runs is not None:
            self.stage_runs.fail()
        self.stage_runs = None
