"""Nodes of `importance`: per-sample head and filter mask gradients and their diagonal Fisher."""

from __future__ import annotations

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import TokenView
from mape_unlearn.core.method.importance import (
    ImportanceSettings,
    MaskGradients,
    split_mask_gradients,
)


def mask_gradients(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: pd.DataFrame,
    params: ImportanceSettings,
    max_samples: int | None,
    tokens: TokenView,
) -> dict[str, torch.Tensor]:
    """Per-sample mask gradients of (a subsample of) the split's rows, with the ``rows`` they
    belong to. Under ``torchrun`` (or ``accelerate launch``) the ranks split the batches
    between them (``hooks.JoinProcessGroup``)."""
    return split_mask_gradients(model, tokenizer, split, params, max_samples, tokens)


def diagonal_fisher(gradients: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The diagonal empirical Fisher ``mean_j g_j^2`` of heads and filters."""
    return MaskGradients(gradients["heads"], gradients["filters"]).fisher()
