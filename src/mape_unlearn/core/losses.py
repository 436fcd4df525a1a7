"""Answer-token losses of a causal LM, per sample, so every stage measures the same thing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mape_unlearn.core.encoding import IGNORE, QABatch


def answer_token_logits(model: nn.Module, batch: QABatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits predicting each next token, ``[B, T-1, V]``, and the targets, ``[B, T-1]``."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return logits[:, :-1], batch.labels[:, 1:]


def answer_nll(model: nn.Module, batch: QABatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample answer NLL summed over answer tokens, ``[B]``, and answer lengths, ``[B]``."""
    logits, targets = answer_token_logits(model, batch)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half -> float32
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    counts = (targets != IGNORE).sum(dim=1)
    return nll.sum(dim=1), counts


def mean_answer_nll(model: nn.Module, batch: QABatch) -> torch.Tensor:
    """Answer-token NLL averaged over all answer tokens of the batch: the training loss."""
    total, counts = answer_nll(model, batch)
    return total.sum() / counts.sum().clamp(min=1)
