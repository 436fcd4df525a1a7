"""Head and filter masks applied through forward pre-hooks (docs/method.md §0).

A head mask scales each head's context vector before the attention output projection; a filter
mask scales the FFN intermediate activation before the down projection. Masks are either shared
(``heads: [L, H]``, ``filters: [L, d_ff]``) or per sample (``[B, L, H]``, ``[B, L, d_ff]``), the
latter giving exact per-sample mask gradients in one backward pass. Recent transformers dropped
the ``head_mask`` argument, so hooks are the only family-independent way in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mape_unlearn.core.method.architectures import layout_of, submodule


def _scale(x: torch.Tensor, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """Multiply ``x: [B, T, groups * width]`` by ``mask: [groups]`` or ``[B, groups]``."""
    batch, tokens, features = x.shape
    per_sample = mask if mask.dim() == 2 else mask.unsqueeze(0)
    scaled = x.view(batch, tokens, groups, features // groups) * per_sample[:, None, :, None]
    return scaled.view(batch, tokens, features)


@contextmanager
def masks_applied(
    model: nn.Module, heads: torch.Tensor | None, filters: torch.Tensor | None
) -> Iterator[None]:
    """Apply head and/or filter masks to ``model`` for the duration of the block."""
    layout = layout_of(model)
    handles = []

    def hook(mask_of_layer: torch.Tensor, groups: int):
        def pre_hook(_module: nn.Module, args: tuple) -> tuple:
            return (_scale(args[0], mask_of_layer, groups), *args[1:])

        return pre_hook

    try:
        for layer, block in enumerate(layout.blocks):
            for mask, path, groups in (
                (heads, layout.family.attn_out, layout.n_heads),
                (filters, layout.family.ffn_down, layout.n_filters),
            ):
                if mask is None:
                    continue
                mask_of_layer = mask[:, layer] if mask.dim() == 3 else mask[layer]
                handles.append(
                    submodule(block, path).register_forward_pre_hook(hook(mask_of_layer, groups))
                )
        yield
    finally:
        for handle in handles:
            handle.remove()
