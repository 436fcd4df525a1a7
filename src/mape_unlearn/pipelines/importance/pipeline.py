"""Wiring of `importance`: one pipeline reused for the forget side and the retain side.

The retain side runs on everything the original model was trained on and does not depend on
which people are forgotten; mask search drops the forgotten people's rows from it.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.importance.nodes import diagonal_fisher, mask_gradients


def create_pipeline() -> Pipeline:
    base = Pipeline(
        [
            Node(
                mask_gradients,
                [
                    "model",
                    "tokenizer",
                    "split",
                    "params:importance",
                    "params:max_samples",
                    "params:tokens",
                ],
                "mask_gradients",
                name="mask_gradients",
            ),
            Node(diagonal_fisher, "mask_gradients", "fisher", name="diagonal_fisher"),
        ]
    )
    return Pipeline(
        [
            Pipeline(
                base,
                namespace=f"{side}_importance",
                inputs={"model": "original_model", "tokenizer": "tokenizer", "split": split},
                parameters={"params:importance": "params:importance"},
                outputs={"mask_gradients": f"{side}_mask_gradients", "fisher": f"{side}_fisher"},
            )
            for side, split in (("forget", "forget_split"), ("retain", "training_split"))
        ],
        tags="importance",
    )
