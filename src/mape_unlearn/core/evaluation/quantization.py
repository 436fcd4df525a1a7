"""Does quantization bring forgotten facts back? (docs/evaluation.md, "Robustness")

Unlearning that moves weights only a little can be undone by rounding them: Zhang et al.
(ICLR 2025) saw 4-bit quantization restore much of the knowledge that small-update unlearning
had hidden. The check rounds a copy of the model's projection weights (every Linear and GPT-2
Conv1D but the output head, as weight-only int8 and 4-bit schemes leave it) to ``bits`` per
output channel — symmetric, round to nearest, scale ``max|w| / (2^(bits-1) - 1)`` — back in
float, and measures the forget facts again (teacher-forced fact exact match, the stop's metric).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats

BITS = (8, 4)


def round_trip(weight: torch.Tensor, bits: int, out_dim: int = 0) -> torch.Tensor:
    """``weight`` quantized to signed ``bits``-bit integers per output channel (the slices
    along ``out_dim``) and back; an all-zero channel stays zero."""
    levels = 2 ** (bits - 1) - 1
    reduce = [d for d in range(weight.dim()) if d != out_dim]
    scale = weight.abs().amax(dim=reduce, keepdim=True) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (weight / scale).round().clamp(-levels, levels) * scale


@torch.no_grad()
def quantized_copy(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with every projection weight but the output head's round-tripped."""
    copied = copy.deepcopy(model)
    head = copied.get_output_embeddings() if hasattr(copied, "get_output_embeddings") else None
    for module in copied.modules():
        if type(module) in (nn.Linear, Conv1D) and module is not head:
            # nn.Linear stores [out, in], Conv1D [in, out]
            out_dim = 1 if isinstance(module, Conv1D) else 0
            module.weight.copy_(round_trip(module.weight, bits, out_dim))
    return copied


def quantized_forgetting(
    model: nn.Module, forget: TokenBatch, batch_size: int, device: torch.device
) -> dict[str, float]:
    """The forget facts the model still gives (teacher-forced fact exact match and fact-token
    accuracy), as it is and after each weight-only round trip of :data:`BITS`."""
    row = {}
    for bits in (None, *BITS):
        quantized = model if bits is None else quantized_copy(model, bits)
        stats = teacher_forced_stats(quantized, forget, batch_size, device)
        prefix = "" if bits is None else f"int{bits}_"
        row[f"{prefix}fact_exact_match"] = stats["fact_exact_match"]
        row[f"{prefix}fact_accuracy"] = stats["fact_accuracy"]
    return row
