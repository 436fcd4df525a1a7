"""Wiring of `train`: one training node reused for the original and the retrain reference.

With the user's own model (``train.original: pretrained``) the original is not trained, and
the retrain reference is a fresh model of the same configuration.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.train.nodes import train_like, train_model

OUTPUTS = ["model", "history"]
FIT = Node(train_model, ["split", "tokenizer", "params:train"], OUTPUTS, name="fit")
FIT_LIKE = Node(
    train_like, ["split", "tokenizer", "original_model", "params:train"], OUTPUTS, name="fit"
)


def _model(name: str, split: str, fit: Node) -> Pipeline:
    """``fit`` in the namespace ``name``: trained on ``split``, saved as ``<name>_model``."""
    shared = {
        dataset: dataset for dataset in fit.inputs if dataset in ("tokenizer", "original_model")
    }
    return Pipeline(
        [fit],
        namespace=name,
        inputs={"split": split, **shared},
        parameters={"params:train": "params:train"},
        outputs={"model": f"{name}_model", "history": f"{name}_training_history"},
    )


def create_pipeline(original: str = "trained", **kwargs) -> Pipeline:
    """``original``: `trained` (built from ``train``'s config) or `pretrained` (the user's)."""
    if original == "pretrained":
        models = [_model("retrain", "retain_split", FIT_LIKE)]
    else:
        models = [_model("original", "training_split", FIT), _model("retrain", "retain_split", FIT)]
    return Pipeline(models, tags="train")
