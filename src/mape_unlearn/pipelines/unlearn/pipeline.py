"""Wiring of `unlearn`: the module mask's weight slices, masked unlearning, and the unlearned
model released with its tokenizer."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.unlearn.nodes import (
    holdout_level,
    module_masks,
    release_model,
    retrain_level,
    unlearn_model,
)
from mape_unlearn.pipelines.unlearn.plots import plot_unlearning_losses

UNLEARN_INPUTS = [
    "original_model",
    "tokenizer",
    "forget_split",
    "retain_split",
    "parameter_masks",
    "unlearning_target",
    "params:unlearn",
]


def unlearn_node() -> Node:
    """The masked unlearning node, shared with the baselines of `evaluate` (via namespaces)."""
    return Node(
        unlearn_model,
        UNLEARN_INPUTS,
        ["unlearned_model", "unlearning_trace", "unlearning_cost"],
        name="unlearn_model",
    )


# unlearn.target -> the node giving the level to reach, and the model and split it reads
TARGET_LEVELS = {
    "retrain": (retrain_level, ["retrain_model", "tokenizer", "forget_split", "params:unlearn"]),
    "holdout": (holdout_level, ["original_model", "tokenizer", "holdout_split", "params:unlearn"]),
}


def create_pipeline(target: str = "retrain", **kwargs) -> Pipeline:
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
                module_masks,
                ["original_model", "module_selection"],
                "parameter_masks",
                name="module_masks",
            ),
            unlearn_node(),
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
