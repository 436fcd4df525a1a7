"""Where heads and FFN filters live in each supported Transformer family.

One table entry per family says which projection a head mask and a filter mask act on, and which
weight slices each head and filter owns. Masks, importance and masked updates all read this table,
so supporting a new family is one entry in ``FAMILIES`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

Owner = Literal["head", "kv_head", "filter"]


@dataclass(frozen=True)
class OwnedSlice:
    """A projection whose features along one axis are owned, in equal blocks, by modules.

    ``axis="out"`` means the module owns output features (rows of an ``nn.Linear`` weight and the
    bias entries); ``axis="in"`` means input features (columns of an ``nn.Linear`` weight).
    ``fused`` > 1 is a projection that stacks several matrices along the owned axis (GPT-2's
    ``c_attn`` holds Q, K and V): the module owns the same slice in every stacked block.
    """

    path: str
    axis: Literal["in", "out"]
    owner: Owner
    fused: int = 1


@dataclass(frozen=True)
class Family:
    """How to find the heads and filters of one architecture family."""

    layers: str  # path from ``model.base_model`` to the list of Transformer blocks
    attn_out: str  # attention output projection: a head mask scales its input
    ffn_down: str  # FFN down projection: a filter mask scales its input
    slices: tuple[OwnedSlice, ...]


_LLAMA_STYLE = Family(
    layers="layers",
    attn_out="self_attn.o_proj",
    ffn_down="mlp.down_proj",
    slices=(
        OwnedSlice("self_attn.q_proj", "out", "head"),
        OwnedSlice("self_attn.k_proj", "out", "kv_head"),
        OwnedSlice("self_attn.v_proj", "out", "kv_head"),
        OwnedSlice("self_attn.o_proj", "in", "head"),
        OwnedSlice("mlp.gate_proj", "out", "filter"),
        OwnedSlice("mlp.up_proj", "out", "filter"),
        OwnedSlice("mlp.down_proj", "in", "filter"),
    ),
)

_BERT_STYLE = Family(
    layers="encoder.layer",
    attn_out="attention.output.dense",
    ffn_down="output.dense",
    slices=(
        OwnedSlice("attention.self.query", "out", "head"),
        OwnedSlice("attention.self.key", "out", "head"),
        OwnedSlice("attention.self.value", "out", "head"),
        OwnedSlice("attention.output.dense", "in", "head"),
        OwnedSlice("intermediate.dense", "out", "filter"),
        OwnedSlice("output.dense", "in", "filter"),
    ),
)

FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        layers="h",
        attn_out="attn.c_proj",
        ffn_down="mlp.c_proj",
        slices=(
            OwnedSlice("attn.c_attn", "out", "head", fused=3),
            OwnedSlice("attn.c_proj", "in", "head"),
            OwnedSlice("mlp.c_fc", "out", "filter"),
            OwnedSlice("mlp.c_proj", "in", "filter"),
        ),
    ),
    "llama": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "bert": _BERT_STYLE,
    "roberta": _BERT_STYLE,
}


@dataclass(frozen=True)
class ModuleLayout:
    """The resolved geometry of one model: its blocks, head and filter counts."""

    family: Family
    blocks: list[nn.Module]
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_filters: int

    @property
    def n_layers(self) -> int:
        return len(self.blocks)


def submodule(module: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted attribute path."""
    for name in path.split("."):
        module = getattr(module, name)
    return module


def family_of(model: nn.Module) -> Family:
    """The table entry for ``model``, or an error naming the supported families."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(
            f"model architecture model_type={model_type!r} is not supported: expected one of "
            f"{sorted(FAMILIES)}. Add an entry to FAMILIES in "
            "src/mape_unlearn/core/method/architectures.py to support it."
        )
    return FAMILIES[model_type]


def in_out_features(module: nn.Module) -> tuple[int, int]:
    """Input and output feature counts of a Linear or GPT-2 Conv1D projection."""
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def layout_of(model: nn.Module) -> ModuleLayout:
    """Resolve the family table against ``model``'s config and modules."""
    family = family_of(model)
    blocks = list(submodule(model.base_model, family.layers))
    n_heads = model.config.num_attention_heads
    n_kv_heads = getattr(model.config, "num_key_value_heads", None) or n_heads
    attn_in, _ = in_out_features(submodule(blocks[0], family.attn_out))
    n_filters, _ = in_out_features(submodule(blocks[0], family.ffn_down))
    return ModuleLayout(
        family=family,
        blocks=blocks,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=attn_in // n_heads,
        n_filters=n_filters,
    )


def module_weight_masks(
    model: nn.Module, heads: torch.Tensor, filters: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Boolean masks over parameters: True where an entry belongs to a selected module.

    ``heads: [L, H]`` and ``filters: [L, d_ff]`` are the selections (docs/method.md §4). Only
    parameters with at least one selected entry appear; every other parameter stays frozen.
    A K/V row of a grouped-query layer is selected when any head of its group is.
    """
    layout = layout_of(model)
    names = {id(p): n for n, p in model.named_parameters()}
    masks: dict[str, torch.Tensor] = {}
    group = layout.n_heads // layout.n_kv_heads
    for layer, block in enumerate(layout.blocks):
        owned = {
            "head": heads[layer].bool(),
            "kv_head": heads[layer].bool().view(layout.n_kv_heads, group).any(dim=1),
            "filter": filters[layer].bool(),
        }
        width = {"head": layout.head_dim, "kv_head": layout.head_dim, "filter": 1}
        for piece in layout.family.slices:
            selected = owned[piece.owner]
            if not selected.any():
                continue
            features = selected.repeat_interleave(width[piece.owner]).repeat(piece.fused)
            module = submodule(block, piece.path)
            transposed = isinstance(module, Conv1D)  # Conv1D stores weight as [in, out]
            weight_axis_of_out = 1 if transposed else 0
            axis = weight_axis_of_out if piece.axis == "out" else 1 - weight_axis_of_out
            shape = [1, 1]
            shape[axis] = -1
            _merge(masks, names[id(module.weight)], features.view(shape).expand_as(module.weight))
            if piece.axis == "out" and getattr(module, "bias", None) is not None:
                _merge(masks, names[id(module.bias)], features)
    return masks


def _merge(masks: dict[str, torch.Tensor], name: str, mask: torch.Tensor) -> None:
    masks[name] = masks[name] | mask if name in masks else mask.clone()


def module_sizes(model: nn.Module) -> tuple[int, int]:
    """Weights owned by one head and by one filter (those of the first layer's first ones):
    what a module costs under a budget in parameters. A grouped-query head is charged the K/V
    rows of its group."""
    layout = layout_of(model)
    sizes = []
    for kind in ("heads", "filters"):
        selected = {
            "heads": torch.zeros(layout.n_layers, layout.n_heads, dtype=torch.bool),
            "filters": torch.zeros(layout.n_layers, layout.n_filters, dtype=torch.bool),
        }
        selected[kind][0, 0] = True
        masks = module_weight_masks(model, selected["heads"], selected["filters"])
        sizes.append(sum(int(mask.sum()) for mask in masks.values()))
    return sizes[0], sizes[1]
