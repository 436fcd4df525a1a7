"""Switching weight gradients off, so passes that only need mask gradients skip weight gradients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter for the block, then restore it."""
    before = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in before:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in before.items():
            p.requires_grad_(flag)
