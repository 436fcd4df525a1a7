"""Wiring of `unlearn`: the module mask's weight slices, masked unlearning, and the unlearned
model released with its tokenizer; and the same unlearning with another method's weights (a
baseline, one namespace each), which the registry adds to `evaluate`."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.unlearn.nodes import (
    holdout_level,
    release_model,
    retrain_level,
    select_method_weights,
    selection_weight_masks,
    unlearn_method_model,
    unlearn_model,
)
from mape_unlearn.pipelines.unlearn.plots import plot_unlearning_losses

UNLEARN_INPUTS = [
    "original_model",
    "tokenizer",
    "forget_split",
    "retain_split",
    "weight_masks",
    "unlearning_target",
    "params:unlearn",
]


SELECTION_INPUTS = [
    "original_model",
    "tokenizer",
    "forget_split",
    "retain_split",
    "training_split",
    "forget_mask_gradients",
    "retain_mask_gradients",
    "params:mask_search",
    "params:selector",
    "params:unlearn",
]
UNLEARN = Node(
    unlearn_model,
    UNLEARN_INPUTS,
    ["unlearned_model", "unlearning_trace", "unlearning_cost"],
    name="unlearn_model",
)


def create_baseline_pipeline(method: str) -> Pipeline:
    """``baselines.<method>``'s weights selected, then unlearned as the module mask is:
    namespace ``baseline_<method>``, outputs ``<method>_model``, ``_unlearning_trace``,
    ``_unlearning_cost`` and ``_weight_masks``."""
    select = Node(
        select_method_weights, SELECTION_INPUTS, "weight_masks", name="select_method_weights"
    )
    # the method's own settings of `unlearn` (baselines.<method>.unlearn) applied
    unlearn = Node(
        unlearn_method_model,
        [*UNLEARN_INPUTS, "params:selector"],
        UNLEARN.outputs,
        name="unlearn_model",
    )
    shared = {name for name in SELECTION_INPUTS + UNLEARN_INPUTS if not name.startswith("params")}
    return Pipeline(
        [select, unlearn],
        namespace=f"baseline_{method}",
        inputs={name: name for name in shared - {"weight_masks"}},
        parameters={
            "params:selector": f"params:baselines.{method}",
            **{p: p for p in ("params:mask_search", "params:unlearn")},
        },
        outputs={
            "weight_masks": f"{method}_weight_masks",
            "unlearned_model": f"{method}_model",
            "unlearning_trace": f"{method}_unlearning_trace",
            "unlearning_cost": f"{method}_unlearning_cost",
        },
    )


# unlearn.target -> the node giving the level to reach, and the model and split it reads
TARGET_LEVELS = {
    "retrain": (retrain_level, ["retrain_model", "tokenizer", "forget_split", "params:unlearn"]),
    "holdout": (holdout_level, ["original_model", "tokenizer", "holdout_split", "params:unlearn"]),
}


def create_pipeline(*, target: str = "retrain") -> Pipeline:
    """``target``: ``unlearn.target``, read at registration (see ``pipeline_registry``)."""
    level, inputs = TARGET_LEVELS[target]
    return Pipeline(
        [
            Node(
                level,
                inputs,
                "unlearning_target",
                name="forget_accuracy_target",
            ),
            Node(
                selection_weight_masks,
                ["original_model", "module_selection"],
                "weight_masks",
                name="selection_weight_masks",
            ),
            UNLEARN,
            Node(
                release_model,
                ["unlearned_model", "tokenizer"],
                "unlearned_release",
                name="release_model",
            ),
            Node(
                plot_unlearning_losses,
                "unlearning_trace",
                "unlearning_loss_plot",
                name="plot_unlearning_losses",
            ),
        ],
        tags="unlearn",
    )
