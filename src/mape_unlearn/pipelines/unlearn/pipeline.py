"""Wiring of `unlearn`."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.unlearn.nodes import forget_accuracy_target, unlearn_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                forget_accuracy_target,
                ["retrain_model", "tokenizer", "forget_split", "params:unlearn"],
                "unlearning_target",
                name="forget_accuracy_target",
            ),
            Node(
                unlearn_model,
                [
                    "original_model",
                    "tokenizer",
                    "forget_split",
                    "retain_split",
                    "module_selection",
                    "unlearning_target",
                    "params:unlearn",
                ],
                ["unlearned_model", "unlearning_trace"],
                name="unlearn_model",
            ),
        ],
        tags="unlearn",
    )
