"""Answer-token losses, per sample, so every stage measures the same thing.

Written once for both task types: a batch says where its scored positions are
(:meth:`~mape_unlearn.core.data.encoding.TokenBatch.scored`), a classifier's label being a
one-token answer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mape_unlearn.core.data.encoding import IGNORE, TokenBatch


def answer_token_logits(model: nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the scored positions, ``[B, S, V]``, and their targets, ``[B, S]``."""
    return batch.scored(model(**batch.model_inputs()).logits)


def answer_nll(model: nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample answer NLL summed over answer tokens, ``[B]``, and answer lengths, ``[B]``."""
    logits, targets = answer_token_logits(model, batch)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half -> float32
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    counts = (targets != IGNORE).sum(dim=1)
    return nll.sum(dim=1), counts


def mean_answer_nll(model: nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Answer-token NLL averaged over all answer tokens of the batch: the training loss."""
    total, counts = answer_nll(model, batch)
    return total.sum() / counts.sum().clamp(min=1)
