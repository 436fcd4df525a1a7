"""What a stage run records besides its parameters and tags: metrics, artifacts, inputs.

Everything is looked up by catalog name among the stage's outputs, so a stage records only
what it makes, and a new output is logged as an artifact without touching this module.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

import torch
from kedro.io import AbstractDataset

from mape_unlearn.datasets import PretrainedModelDataset

# Reports whose numbers become metrics, with the prefix of their keys ("" = none). Series
# (per epoch, per unlearning step, per greedy sweep) keep their steps: see values.metric_points.
METRIC_SOURCES: dict[str, str] = {
    "fact_rules": "facts",
    "original_training_history": "original",
    "retrain_training_history": "retrain",
    "search_trace": "",
    "unlearning_target": "target",
    "unlearning_trace": "",
    "unlearning_cost": "cost",
    "evaluation_metrics": "",
}

# Reports whose metrics are also logged on the parent run, to compare `kedro run`s at a glance.
PARENT_METRIC_SOURCES: dict[str, str] = {"evaluation_metrics": ""}

# Outputs not copied into MLflow as artifacts (names or fnmatch patterns): large, and re-created
# from the logged parameters and code. The splits are identified by the dataset inputs' digests
# (the forget split itself is logged); per-sample gradients by their diagonal Fisher; per-weight
# masks by the module selection they are derived from. Models are never copied (``is_logged``):
# the unlearned one is logged once, as the registered MLflow model of its release.
NOT_LOGGED = (
    "qa_dataset",
    "training_split",
    "retain_split",
    "holdout_split",
    "*_mask_gradients",
    "*weight_masks",
    "unlearned_release",  # an MLflow model, registered (registry.py)
)

# Splits logged as MLflow dataset inputs, with their context.
DATASET_INPUTS: dict[str, str] = {"forget_split": "forget", "retain_split": "retain"}

SELECTION = "module_selection"


def selection_summary(selection: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The selected heads and filters as indices: readable without safetensors.

    ``selection``: bool masks ``heads [L, H]`` and ``filters [L, d_ff]``.
    """
    heads: torch.Tensor = selection["heads"].bool()
    filters: torch.Tensor = selection["filters"].bool()
    return {
        "heads": [[layer, head] for layer, head in heads.nonzero().tolist()],
        "filters": {
            str(layer): row.nonzero().flatten().tolist() for layer, row in enumerate(filters)
        },
        "selected_heads": int(heads.sum()),
        "selected_filters": int(filters.sum()),
        "heads_per_layer": heads.sum(dim=1).tolist(),
        "filters_per_layer": filters.sum(dim=1).tolist(),
    }


def is_logged(name: str, dataset: AbstractDataset | None) -> bool:
    """Whether a stage output is copied into its MLflow run as an artifact."""
    if dataset is None or isinstance(dataset, PretrainedModelDataset):
        return False
    return not any(fnmatch(name, pattern) for pattern in NOT_LOGGED)
