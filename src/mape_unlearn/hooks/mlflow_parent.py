"""One job: kedro-mlflow's parent run of each ``kedro run``, whose failures only warn."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

log = logging.getLogger(__name__)

# the datasets kedro-mlflow's after_catalog_created looks for (it gives each its catalog name)
_METRIC_DATASETS = (
    "MlflowMetricDataset",
    "MlflowMetricHistoryDataset",
    "MlflowMetricsHistoryDataset",
)


def _declares_metric_datasets(conf_catalog: dict[str, Any]) -> bool:
    """Whether the catalog's configuration has an entry of one of kedro-mlflow's metric types."""
    types = (entry.get("type", "") for entry in conf_catalog.values() if isinstance(entry, dict))
    return any(str(kind).rsplit(".", 1)[-1] in _METRIC_DATASETS for kind in types)


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
        # kedro-mlflow names its metric datasets here, building every dataset of the catalog
        # to find them (a second of imports on each run); without one declared, nothing to do
        if not _declares_metric_datasets(conf_catalog):
            return
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
