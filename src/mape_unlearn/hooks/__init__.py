"""Project hooks, one job each, registered in ``settings.HOOKS``:

- ``mlflow_parent.GuardedMlflowHook``: kedro-mlflow's parent run of each ``kedro run``, guarded;
- ``stage_runs.TrackStages``: one nested MLflow run per stage;
- ``close_runs.CloseMlflowRuns``: no MLflow run left open once a Kedro run ends;
- ``process_group.JoinProcessGroup``: the process group of a distributed launch, joined first.

Order within ``settings.HOOKS`` matters little: ``TrackStages`` says when it must run relative
to kedro-mlflow (``trylast`` / ``tryfirst``).
"""

from mape_unlearn.hooks.close_runs import CloseMlflowRuns
from mape_unlearn.hooks.mlflow_parent import GuardedMlflowHook
from mape_unlearn.hooks.process_group import JoinProcessGroup
from mape_unlearn.hooks.stage_runs import TrackStages

__all__ = ["CloseMlflowRuns", "GuardedMlflowHook", "JoinProcessGroup", "TrackStages"]
