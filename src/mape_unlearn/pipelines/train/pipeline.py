"""Wiring of `train`: one training pipeline reused for the original and the retrain reference."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.train.nodes import train_model


def create_pipeline(**kwargs) -> Pipeline:
    base = Pipeline(
        [
            Node(
                train_model,
                ["split", "tokenizer", "params:train"],
                ["model", "history"],
                name="fit",
            )
        ]
    )
    return Pipeline(
        [
            Pipeline(
                base,
                namespace=name,
                inputs={"split": split, "tokenizer": "tokenizer"},
                parameters={"params:train": "params:train"},
                outputs={"model": f"{name}_model", "history": f"{name}_training_history"},
            )
            for name, split in (("original", "training_split"), ("retrain", "retain_split"))
        ],
        tags="train",
    )
