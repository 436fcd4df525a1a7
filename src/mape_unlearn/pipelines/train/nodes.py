"""Nodes of `train`: a model fine-tuned on one split (the original or the retrain reference)."""

from __future__ import annotations

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.models import build_causal_lm, fresh_like
from mape_unlearn.core.training import train_on_answers
from mape_unlearn.params import TrainParams


def train_model(
    split: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, params: TrainParams
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    """Build the configured model and train it to answer the split's questions."""
    model = build_causal_lm(params.model_type, params.architecture, tokenizer, params.seed)
    return _train(model, split, tokenizer, params)


def train_like(
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    original: PreTrainedModel,
    params: TrainParams,
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    """Train a fresh model with the (user's) original model's configuration on the split."""
    return _train(fresh_like(original, params.seed), split, tokenizer, params)


def _train(
    model: PreTrainedModel,
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    params: TrainParams,
) -> tuple[PreTrainedModel, dict[str, list[float]]]:
    model, history = train_on_answers(
        model,
        encode_frame(tokenizer, split),
        epochs=params.epochs,
        lr=params.lr,
        batch_size=params.batch_size,
        warmup_fraction=params.warmup_fraction,
        weight_decay=params.weight_decay,
        seed=params.seed,
        device=resolve_device(params.device),
    )
    return model.cpu(), {"answer_nll_per_epoch": history}
