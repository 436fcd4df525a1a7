"""Nodes of `importance`: per-sample head and filter mask gradients and their diagonal Fisher."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame, scored_on
from mape_unlearn.core.importance import MaskGradients, per_sample_mask_gradients
from mape_unlearn.params import ImportanceParams

log = logging.getLogger(__name__)


def mask_gradients(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: pd.DataFrame,
    params: ImportanceParams,
    max_samples: int | None,
    tokens: str,
) -> dict[str, torch.Tensor]:
    """Per-sample mask gradients of (a seeded subsample of) the split's rows, of the NLL of
    their ``tokens`` (``fact``: the answers' fact tokens; ``answer``: every answer token).

    ``rows`` records which rows of the split each gradient belongs to, so that later stages can
    drop the rows of people who are to be forgotten. Under ``torchrun`` (or ``accelerate
    launch``) the ranks split the batches between them (``hooks.JoinProcessGroup``).
    """
    rows = torch.arange(len(split))
    if max_samples is not None and max_samples < len(split):
        generator = torch.Generator().manual_seed(params.seed)
        rows = torch.randperm(len(split), generator=generator)[:max_samples].sort().values
    grads = per_sample_mask_gradients(
        model,
        scored_on(encode_frame(tokenizer, split.iloc[rows.numpy()]), tokens),
        batch_size=params.batch_size,
        device=resolve_device(params.device),
        dtype=getattr(torch, params.dtype),
        autocast=params.autocast,
    )
    log.info(
        "mask gradients of %d samples (%s tokens): heads %s, filters %s",
        len(rows),
        tokens,
        tuple(grads.heads.shape),
        tuple(grads.filters.shape),
    )
    return {**grads.as_dict(), "rows": rows}


def diagonal_fisher(gradients: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The diagonal empirical Fisher ``mean_j g_j^2`` of heads and filters."""
    return MaskGradients(gradients["heads"], gradients["filters"]).fisher()
