"""One job: leave no MLflow run active once a Kedro run ends."""

from __future__ import annotations

import mlflow
from kedro.framework.hooks import hook_impl


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
