"""Nodes of `train`: a model fine-tuned on one split (the original or the retrain reference).

The task follows the data: a split with a ``label`` column trains a sequence classifier with
one class per label value (``0 .. max label``), any other split a causal LM on its answers.
"""

from __future__ import annotations

import copy

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.runtime.device import resolve_device
from mape_unlearn.core.runtime.models import build_model, check_fits, fresh_like
from mape_unlearn.core.runtime.training import train_on_answers
from mape_unlearn.params import TrainParams


def train_model(
    split: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, params: TrainParams
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    """Build the configured model and train it on the split."""
    num_labels = int(split["label"].max()) + 1 if "label" in split.columns else None
    model = build_model(params.model_type, params.architecture, tokenizer, params.seed, num_labels)
    return _train(model, split, tokenizer, params)


def train_like(
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    original: PreTrainedModel,
    params: TrainParams,
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    """Train a fresh model with the (user's) original model's configuration on the split."""
    return _train(fresh_like(original, params.seed), split, tokenizer, params)


def fine_tune(
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    base_model: PreTrainedModel,
    params: TrainParams,
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    """Fine-tune a copy of a pretrained base model on the split (``train.original:
    finetuned``): the retrain reference then starts from the same pretrained weights."""
    return _train(copy.deepcopy(base_model), split, tokenizer, params)


def _train(
    model: PreTrainedModel,
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    params: TrainParams,
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    data = encode_frame(tokenizer, split)
    check_fits(model, data, "the training data")
    model, history = train_on_answers(
        model,
        data,
        epochs=params.epochs,
        lr=params.lr,
        batch_size=params.batch_size,
        warmup_fraction=params.warmup_fraction,
        weight_decay=params.weight_decay,
        seed=params.seed,
        device=resolve_device(params.device),
        autocast=params.autocast,
    )
    return model.cpu(), {"answer_nll_per_epoch": history}
