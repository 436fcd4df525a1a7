"""MLflow lineage of a run: one nested MLflow run per stage under kedro-mlflow's run.

``stage_runs.StageRuns`` does the logging (driven by ``mape_unlearn.hooks.TrackStages``);
``recorded`` reads what the catalog declares each output records, ``lineage`` how a reused
stage finds the run that produced it, ``values`` how nested values become MLflow params and
step metrics, ``naming`` what a run is called, ``registry`` how the released model enters the
MLflow model registry.
"""

from mape_unlearn.tracking.naming import run_names
from mape_unlearn.tracking.stage_runs import StageRuns

__all__ = ["StageRuns", "run_names"]
