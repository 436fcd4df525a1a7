"""Compact masked updates: train only the selected rows or columns, as small delta tensors.

A module mask owns whole output features (rows of an ``nn.Linear`` weight, and bias entries) or
whole input features (columns) of a projection (docs/method.md §4,
``architectures.FAMILIES``). Rather than a full-size gradient and Adam state multiplied by a 0/1
mask, such a slice becomes a trainable delta, ``[k, in]`` for k selected rows or ``[out, k]``
for k columns, whose contribution a forward hook adds to the projection's output while the
weight stays frozen:

    rows:    y = x W^T + b;  y[..., rows] += x delta^T + delta_b      (delta: [k, in])
    columns: y = x W^T + b + x[..., cols] delta^T                     (delta: [out, k])

That is ``x (W + scatter(delta))^T`` without materialising the sum, so autograd computes
gradients only for the deltas (equal to the selected entries of the masked full gradient) and
skips the frozen weight's gradient. :meth:`CompactUpdate.merge` adds the deltas into the weights
at the end; no other entry is ever written, so frozen weights stay bit-identical.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

Axis = Literal["out", "in"]
# above this share of a tensor's rows (columns) the delta is nearly full size and its extra
# matmul costs more than it saves: the dense masked path trains that tensor instead
MAX_COMPACT_FRACTION = 0.5


@dataclass(frozen=True)
class Slice:
    """Selected whole features of a projection's weight or bias, in ``nn.Linear`` orientation.

    ``axis="out"``: output features (weight rows, bias entries); ``"in"``: input features
    (weight columns). ``numel`` is the number of trainable entries (``k*in``, ``out*k`` or ``k``).
    """

    axis: Axis
    index: torch.Tensor  # [k]
    numel: int


def _projections(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Weights and biases of Linear / GPT-2 Conv1D projections, by parameter name.

    A tensor another module also uses (a tied embedding) is left out: a hook on one module
    would not update its other use.
    """
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    found: dict[str, tuple[nn.Module, str]] = {}
    for path, module in model.named_modules():
        if type(module) not in (nn.Linear, Conv1D):  # subclasses may compute something else
            continue
        for attr in ("weight", "bias"):
            param = getattr(module, attr, None)
            if isinstance(param, nn.Parameter) and uses[id(param)] == 1:
                found[f"{path}.{attr}" if path else attr] = (module, attr)
    return found


def _linear_oriented(module: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as ``[out, in]``: Conv1D stores its weight as ``[in, out]``."""
    return tensor.T if isinstance(module, Conv1D) and tensor.dim() == 2 else tensor


def _whole_features(mask: torch.Tensor) -> tuple[Axis, torch.Tensor] | None:
    """``("out", rows)`` or ``("in", columns)`` when an ``[out, in]`` mask is whole ones of them."""
    if mask.dim() == 1:
        return "out", mask.nonzero().flatten()
    rows = mask.any(dim=1)
    if torch.equal(mask, rows[:, None].expand_as(mask)):
        return "out", rows.nonzero().flatten()
    columns = mask.any(dim=0)
    if torch.equal(mask, columns[None, :].expand_as(mask)):
        return "in", columns.nonzero().flatten()
    return None


def compact_slices(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, Slice]:
    """The masked tensors that can train as compact slices, by parameter name.

    A tensor qualifies when it is an unshared Linear/Conv1D weight or bias whose mask selects
    whole rows or whole columns, at most ``MAX_COMPACT_FRACTION`` of them. Element masks
    (``salun``, ``sa``), all-ones masks (``full``) and other modules stay on the dense path.
    """
    projections = _projections(model)
    slices: dict[str, Slice] = {}
    for name, mask in masks.items():
        if name not in projections:
            continue
        module, _ = projections[name]
        oriented = _linear_oriented(module, mask.bool())
        found = _whole_features(oriented)
        if found is None:
            continue
        axis, index = found
        total = oriented.shape[0 if axis == "out" else 1]
        if index.numel() <= MAX_COMPACT_FRACTION * total:
            slices[name] = Slice(axis, index, oriented.numel() // total * index.numel())
    return slices


@dataclass
class _Delta:
    """One trainable slice: where it goes and its values (``[k, in]``, ``[out, k]`` or ``[k]``)."""

    attr: str  # "weight" or "bias"
    axis: Axis
    index: torch.Tensor
    value: nn.Parameter


class CompactUpdate:
    """Trainable deltas for the given slices of ``model``, added to outputs by forward hooks."""

    def __init__(self, model: nn.Module, slices: dict[str, Slice]) -> None:
        projections = _projections(model)
        self.deltas: dict[str, _Delta] = {}
        per_module: dict[nn.Module, list[_Delta]] = {}
        for name, piece in slices.items():
            if piece.index.numel() == 0:
                continue  # nothing selected: the tensor stays frozen
            module, attr = projections[name]
            weight = _linear_oriented(module, getattr(module, attr))
            shape = list(weight.shape)
            shape[0 if piece.axis == "out" else 1] = piece.index.numel()
            index = piece.index.to(weight.device)
            value = nn.Parameter(weight.new_zeros(shape))
            self.deltas[name] = _Delta(attr, piece.axis, index, value)
            per_module.setdefault(module, []).append(self.deltas[name])
        self._corrections = {module: _Correction(deltas) for module, deltas in per_module.items()}
        self._handles = [m.register_forward_hook(c) for m, c in self._corrections.items()]

    def parameters(self) -> dict[str, nn.Parameter]:
        """The deltas, keyed by the name of the parameter each one updates."""
        return {name: delta.value for name, delta in self.deltas.items()}

    @torch.no_grad()
    def merge(self) -> None:
        """Add the deltas into the weights (only selected entries are written); drop the hooks."""
        for handle in self._handles:
            handle.remove()
        for module, correction in self._corrections.items():
            for delta in correction.deltas:
                target = _linear_oriented(module, getattr(module, delta.attr))
                dim = 0 if delta.axis == "out" else 1
                target.index_add_(dim, delta.index, delta.value.to(target.dtype))


class _Correction:
    """Forward hook of one projection: adds ``x scatter(delta)^T`` to its output."""

    def __init__(self, deltas: list[_Delta]) -> None:
        weights = [d for d in deltas if d.attr == "weight"]
        biases = [d for d in deltas if d.attr == "bias"]
        self.deltas = deltas
        self.weight = weights[0] if weights else None
        self.bias = biases[0] if biases else None
        # the usual case, a head or filter's rows and bias entries: one matmul with a bias
        self.fused = (
            self.weight is not None
            and self.bias is not None
            and self.weight.axis == "out"
            and torch.equal(self.weight.index, self.bias.index)
        )

    def __call__(
        self, module: nn.Module, args: tuple[torch.Tensor, ...], y: torch.Tensor
    ) -> torch.Tensor:
        x = args[0]
        w, b = self.weight, self.bias
        if self.fused:
            assert w is not None and b is not None
            return y.index_add(-1, w.index, F.linear(x, w.value, b.value))
        if w is not None and w.axis == "out":
            y = y.index_add(-1, w.index, F.linear(x, w.value))
        elif w is not None:
            y = y + F.linear(x.index_select(-1, w.index), w.value)
        if b is not None:
            y = y.index_add(-1, b.index, b.value.expand(*y.shape[:-1], -1))
        return y
