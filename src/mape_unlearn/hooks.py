"""Project hooks: kedro-mlflow's parent run, guarded; one MLflow run per stage; no run left
open; the process group of a distributed launch joined before any node.

Order within ``settings.HOOKS`` matters little: ``TrackStages`` says when it must run relative
to kedro-mlflow (``trylast`` / ``tryfirst``).
"""

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
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

from mape_unlearn.core.runtime.distributed import init_from_env

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


class GuardedMlflowHook:
    """kedro-mlflow's own hook (the parent run of each ``kedro run``), whose failures warn.

    An unreachable tracking server or a bad ``MLFLOW_TRACKING_URI`` makes kedro-mlflow raise,
    and a plain ``kedro run`` must never fail because of tracking settings: the first failure
    turns tracking off for the session and the run goes on. Registered through
    ``settings.HOOKS`` in place of the plugin's auto-registered instance
    (``DISABLE_HOOKS_FOR_PLUGINS``).
    """

    def __init__(self) -> None:
        self.hook = MlflowHook()
        self.failed = False

    def _call(self, name: str, **kwargs: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.hook, name)(**kwargs)
        except Exception as error:  # tracking must never fail the user's run
            self.failed = True
            log.warning(
                "MLflow tracking off for this session: kedro-mlflow %s failed: %r", name, error
            )
            while mlflow.active_run() is not None:
                mlflow.end_run("FAILED")

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self.failed = False  # a new session: try again
        self._call("after_context_created", context=context)

    @hook_impl
    def after_catalog_created(
        self,
        catalog: CatalogProtocol,
        conf_catalog: dict[str, Any],
        conf_creds: dict[str, Any],
        parameters: dict[str, Any],
        save_version: str,
        load_versions: dict[str, str],
    ) -> None:
        self._call(
            "after_catalog_created",
            catalog=catalog,
            conf_catalog=conf_catalog,
            conf_creds=conf_creds,
            parameters=parameters,
            save_version=save_version,
            load_versions=load_versions,
        )

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self._call("before_pipeline_run", run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def before_node_run(
        self, node: Node, catalog: CatalogProtocol, inputs: dict[str, Any], is_async: bool
    ) -> None:
        self._call("before_node_run", node=node, catalog=catalog, inputs=inputs, is_async=is_async)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self._call("after_pipeline_run", run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def on_pipeline_error(
        self,
        error: Exception,
        run_params: dict[str, Any],
        pipeline: Pipeline,
        catalog: CatalogProtocol,
    ) -> None:
        self._call(
            "on_pipeline_error",
            error=error,
            run_params=run_params,
            pipeline=pipeline,
            catalog=catalog,
        )


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
        # imported here: the stages pull in torch and transformers, which settings should not
        from mape_unlearn.pipeline_registry import STAGES
        from mape_unlearn.tracking import StageRuns, run_names

        self.stage_runs = StageRuns(
            client=mlflow.MlflowClient(mlflow.get_tracking_uri()),
            parent_id=parent.info.run_id,
            session_id=run_params["run_id"],
            project_path=Path(run_params["project_path"]),
            stages=list(STAGES),
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


class CloseMlflowRuns:
    """Leave no MLflow run active once a Kedro run ends.

    kedro-mlflow 2.0 with MLflow 3 re-enters its run before every node and ends it once, so the
    run stays active in the process afterwards; the next session in the same process (a
    notebook, a test) would then log into that stale run.
    """

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        while mlflow.active_run() is not None:
            mlflow.end_run()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        while mlflow.active_run() is not None:
            mlflow.end_run("FAILED")


class JoinProcessGroup:
    """Under ``torchrun`` / ``accelerate launch``, join the launcher's process group first.

    Importance, unlearning and evaluation then split their samples between the ranks
    (``core.runtime.distributed``); every rank runs every node, so each collective has all ranks. A
    plain ``kedro run`` has no launcher variables and joins nothing.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self) -> None:
        init_from_env()
