"""Wiring of `train`: one training node reused for the original and the retrain reference.

With the user's own model (``train.original: pretrained``) the original is not trained, and
the retrain reference is a fresh model of the same configuration. With a pretrained base
(``finetuned``: the catalog's ``base_model``) both are fine-tuned from a copy of the base.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.train.nodes import fine_tune, train_like, train_model

OUTPUTS = ["model", "history"]
FIT = Node(train_model, ["split", "tokenizer", "params:train"], OUTPUTS, name="fit")
FIT_LIKE = Node(
    train_like, ["split", "tokenizer", "original_model", "params:train"], OUTPUTS, name="fit"
)
FIT_FROM_BASE = Node(
    fine_tune, ["split", "tokenizer", "base_model", "params:train"], OUTPUTS, name="fit"
)
SHARED = ("tokenizer", "original_model", "base_model")


def _model(name: str, split: str, fit: Node) -> Pipeline:
    """``fit`` in the namespace ``name``: trained on ``split``, saved as ``<name>_model``."""
    shared = {dataset: dataset for dataset in fit.inputs if dataset in SHARED}
    return Pipeline(
        [fit],
        namespace=name,
        inputs={"split": split, **shared},
        parameters={"params:train": "params:train"},
        outputs={"model": f"{name}_model", "history": f"{name}_training_history"},
    )


def create_pipeline(*, original: str = "trained", retrain: bool = True) -> Pipeline:
    """``original``: `trained` (built from ``train``'s config), `pretrained` (the user's) or
    `finetuned` (from the catalog's ``base_model``); ``retrain``: whether the retrain reference
    is trained too (``train.retrain``)."""
    fit = {"pretrained": FIT_LIKE, "finetuned": FIT_FROM_BASE}.get(original, FIT)
    models = [] if original == "pretrained" else [_model("original", "training_split", fit)]
    if retrain:
        models.append(_model("retrain", "retain_split", fit))
    return Pipeline(models, tags="train")


def create_retrain_pipeline() -> Pipeline:
    """A fresh model like the original, trained on ``retain_split`` as ``retrain_model``: the
    retrain reference of a deletion request the study draws (untagged: the caller's stage)."""
    return _model("retrain", "retain_split", FIT_LIKE)
