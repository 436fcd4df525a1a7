"""Wiring of `successive`: ``successive.requests`` deletion requests in a row, each served from
the model the previous one left, and their figure."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.successive.nodes import successive_requests
from mape_unlearn.pipelines.successive.plots import plot_successive


def create_pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(
                successive_requests,
                [
                    "original_model",
                    "tokenizer",
                    "training_split",
                    "forget_split",
                    "holdout_split",
                    "retain_mask_gradients",
                    "unlearning_target",
                    "params:mask_search",
                    "params:unlearn",
                    "params:importance",
                    "params:successive",
                ],
                "successive_unlearning",
                name="successive_requests",
            ),
            Node(
                plot_successive,
                ["successive_unlearning", "unlearning_target"],
                "successive_unlearning_plot",
                name="plot_successive",
            ),
        ],
        tags="successive",
    )
