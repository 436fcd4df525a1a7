"""Exact per-sample head and filter mask gradients in one backward pass per batch.

(docs/method.md §1)

Each sample gets its own copy of the masks (``[B, L, H]``, ``[B, L, d_ff]``) at 1. With every
weight frozen, the gradient of the *sum* of per-sample losses with respect to those copies is,
row by row, each sample's own gradient, since sample b's loss depends only on copy b.

Under an initialised ``torch.distributed`` process group (``torchrun``, ``accelerate launch``),
each rank computes a contiguous shard of whole batches and one gather gives every rank the full
result. The shards are the single process's own batches, so the gathered gradients are the
single-process ones whatever the number of ranks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from pydantic import PositiveInt
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import TokenBatch, TokenView, encode_frame, scored_on
from mape_unlearn.core.method.architectures import layout_of
from mape_unlearn.core.method.losses import answer_nll
from mape_unlearn.core.method.masks import masks_applied
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.device import resolve_device
from mape_unlearn.core.runtime.distributed import gather_rows, rank_and_world, shard_bounds
from mape_unlearn.core.runtime.precision import Autocast
from mape_unlearn.core.runtime.settings import settings
from mape_unlearn.core.runtime.weights import frozen

log = logging.getLogger(__name__)


@settings
class ImportanceSettings:
    """How mask gradients are computed (parameters_importance.yml)."""

    batch_size: PositiveInt
    dtype: Literal["float32", "float16"]  # storage of the gradients
    seed: int  # draws the rows of a subsample
    device: str  # core.runtime.device.resolve_device
    autocast: Autocast  # bf16 forward: auto, bf16 or off (core.runtime.precision)


@dataclass
class MaskGradients:
    """Per-sample mask gradients ``g_j = dl(x_j)/dm`` at m = 1."""

    heads: torch.Tensor  # [n, L, H]
    filters: torch.Tensor  # [n, L, d_ff]

    def fisher(self) -> dict[str, torch.Tensor]:
        """The diagonal empirical Fisher ``mean_j g_j^2`` per module type."""
        return {
            "heads": self.heads.float().pow(2).mean(dim=0),
            "filters": self.filters.float().pow(2).mean(dim=0),
        }

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"heads": self.heads, "filters": self.filters}


def per_sample_mask_gradients(
    model: nn.Module,
    data: TokenBatch,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    description: str = "mask gradients",
    autocast: Autocast = "off",
) -> MaskGradients:
    """Gradients of each sample's summed answer NLL with respect to its own head/filter masks.

    ``dtype`` is the storage of the result; ``autocast`` runs the forward in bf16 where it applies
    (``core.runtime.precision``). Data-parallel when a process group is initialised (module
    docstring).
    """
    layout = layout_of(model)
    model.to(device).eval()
    batches = list(data.batches(batch_size))
    rank, world = rank_and_world()
    start, stop = shard_bounds(len(batches), rank, world)  # whole batches: results match 1 rank
    if world > 1:
        description = f"{description} (rank {rank}/{world}: batches {start}-{stop})"
    heads = [torch.zeros(0, layout.n_layers, layout.n_heads, dtype=dtype)]  # an empty shard
    filters = [torch.zeros(0, layout.n_layers, layout.n_filters, dtype=dtype)]
    with frozen(model):
        for batch in tqdm(batches[start:stop], desc=description, leave=False):
            batch = batch.to(device)
            n = len(batch)
            head_mask = torch.ones(n, layout.n_layers, layout.n_heads, device=device)
            filter_mask = torch.ones(n, layout.n_layers, layout.n_filters, device=device)
            head_mask.requires_grad_(True)
            filter_mask.requires_grad_(True)
            with (
                masks_applied(model, head_mask, filter_mask),
                precision.autocast(device, autocast, model),
            ):
                losses, _ = answer_nll(model, batch)
            g_heads, g_filters = torch.autograd.grad(losses.sum(), [head_mask, filter_mask])
            heads.append(g_heads.to("cpu", dtype))
            filters.append(g_filters.to("cpu", dtype))
    return MaskGradients(gather_rows(torch.cat(heads)), gather_rows(torch.cat(filters)))


def split_mask_gradients(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    split: pd.DataFrame,
    settings: ImportanceSettings,
    max_samples: int | None,
    tokens: TokenView,
) -> dict[str, torch.Tensor]:
    """Per-sample mask gradients of (a seeded subsample of) the split's rows, of the NLL of
    their ``tokens`` (``fact``: the answers' fact tokens; ``answer``: every answer token).

    ``rows`` records which rows of the split each gradient belongs to, so that a deletion
    request can drop the rows of the people it forgets (core.data.splits.rows_not_forgotten).
    """
    rows = torch.arange(len(split))
    if max_samples is not None and max_samples < len(split):
        generator = torch.Generator().manual_seed(settings.seed)
        rows = torch.randperm(len(split), generator=generator)[:max_samples].sort().values
    grads = per_sample_mask_gradients(
        model,
        scored_on(encode_frame(tokenizer, split.iloc[rows.numpy()]), tokens),
        batch_size=settings.batch_size,
        device=resolve_device(settings.device),
        dtype=getattr(torch, settings.dtype),
        autocast=settings.autocast,
    )
    log.info(
        "mask gradients of %d samples (%s tokens): heads %s, filters %s",
        len(rows),
        tokens,
        tuple(grads.heads.shape),
        tuple(grads.filters.shape),
    )
    return {**grads.as_dict(), "rows": rows}
