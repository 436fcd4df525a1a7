"""Which weights an unlearning method may change: the module mask and the baselines.

(docs/method.md §5)

Every selector returns boolean parameter masks (``{parameter name: mask}``), so one masked
optimiser serves all methods and they differ only in what they select:
``random_modules`` draws heads and filters at the module budget; ``full`` takes every weight;
``salun`` takes the weights with the largest forget-loss gradient magnitude and ``sa`` those
with the largest diagonal empirical Fisher (from per-sample gradients) on the forget set, each
exactly the top ``budget(weights, sparsity)`` of all weights.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, Literal

import torch
from pydantic import TypeAdapter, ValidationError, field_validator
from torch import nn
from tqdm.auto import tqdm

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.method.architectures import layout_of
from mape_unlearn.core.method.losses import answer_nll, mean_answer_nll
from mape_unlearn.core.method.search import ModuleSelection, Objective, budget
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.settings import settings

PARAMETER_SELECTORS: tuple[str, ...] = ("salun", "sa")


@settings
class Selector:
    """How a compared method chooses the weights it updates (parameters_evaluate.yml,
    ``baselines``)."""

    kind: Literal["modules", "random_modules", "full", "salun", "sa"]
    objective: Objective | None = None  # modules: the search objective (None: the search's)
    greedy: bool = True  # modules: greedy sweeps after the warm start, or the warm start alone
    seed: int = 0  # random_modules: the draw
    # settings of `unlearn` this method changes (e.g. {optimizer: sam}; none: the stage's),
    # applied where it unlearns (methods.method_settings)
    unlearn: dict[str, Any] = field(default_factory=dict)

    @field_validator("unlearn")
    @classmethod
    def _unlearn_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """Each override names a setting of ``unlearn`` and has a value it allows."""
        fields = UnlearnSettings.__pydantic_fields__
        for name, value in overrides.items():
            if name not in fields:
                raise ValueError(
                    f"unlearn.{name}={value!r} is not allowed: {name!r} is not a setting of "
                    f"`unlearn`; expected one of {sorted(fields)}"
                )
            info = fields[name]
            kind = (
                Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            try:
                TypeAdapter(kind).validate_python(value)
            except ValidationError as error:
                raise ValueError(
                    f"unlearn.{name}={value!r} is not allowed: {error.errors()[0]['msg']}"
                ) from None
        return overrides


def random_modules(model: nn.Module, sparsity: float, seed: int) -> ModuleSelection:
    """Heads and filters drawn uniformly at the same per-type budget as the module search."""
    layout = layout_of(model)
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for width in (layout.n_heads, layout.n_filters):
        total = layout.n_layers * width
        chosen = torch.zeros(total, dtype=torch.bool)
        chosen[torch.randperm(total, generator=generator)[: budget(total, sparsity)]] = True
        picks.append(chosen.view(layout.n_layers, width))
    return ModuleSelection(*picks)


def all_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Masks that select every weight: full-parameter unlearning."""
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in model.named_parameters()}


def saliency_parameters(
    model: nn.Module,
    forget: TokenBatch,
    kind: str,
    sparsity: float,
    batch_size: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Exactly the top ``budget(weights, sparsity)`` weights by forget-set saliency, across all
    parameters (:func:`top_k_masks`).

    ``salun``: ``|grad of the forget loss|`` over the whole forget set (batches of
    ``batch_size``). ``sa``: the diagonal empirical Fisher of the forget set
    (:func:`diagonal_fisher`).
    """
    if kind not in PARAMETER_SELECTORS:
        raise ValueError(f"kind={kind!r} is not allowed: expected one of {PARAMETER_SELECTORS}")
    model.to(device).eval()
    if kind == "salun":
        score = {name: g.abs_() for name, g in forget_gradient(model, forget, batch_size).items()}
    else:
        score = diagonal_fisher(model, forget)
    return top_k_masks(score, budget(sum(s.numel() for s in score.values()), sparsity))


def forget_gradient(
    model: nn.Module, forget: TokenBatch, batch_size: int
) -> dict[str, torch.Tensor]:
    """Gradient of the forget loss per parameter: each batch's mean answer-token NLL weighted
    by its share of the samples, so the batches add up to one pass over the set."""
    device = next(model.parameters()).device
    params = dict(model.named_parameters())
    gradient = {name: torch.zeros_like(p) for name, p in params.items()}
    for batch in tqdm(list(forget.batches(batch_size)), desc="forget gradient", leave=False):
        model.zero_grad(set_to_none=True)
        (mean_answer_nll(model, batch.to(device)) * len(batch) / len(forget)).backward()
        for name, p in params.items():
            if p.grad is not None:
                gradient[name] += p.grad
    model.zero_grad(set_to_none=True)
    return gradient


def diagonal_fisher(model: nn.Module, data: TokenBatch) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher per parameter, ``F = mean_j g_j^2`` with ``g_j`` the gradient of
    sample j's summed answer NLL (the per-sample loss of the mask gradients,
    core/method/importance.py).

    Per-sample gradients, not mini-batch ones: the square of a batch mean is not the mean of
    the squares. One backward pass per sample, each squared into the running sum at once, so
    memory is one gradient and the sum whatever the set's size. (``torch.func.vmap`` would
    batch the passes, but Hugging Face models build their attention masks with data-dependent
    control flow, which vmap cannot trace.)
    """
    if len(data) == 0:
        raise ValueError("data has 0 samples: the Fisher needs at least one")
    device = next(model.parameters()).device
    params = dict(model.named_parameters())
    # float32 at least: squares of half-precision gradients would underflow and round away
    fisher = {
        name: torch.zeros_like(p, dtype=torch.promote_types(p.dtype, torch.float32))
        for name, p in params.items()
    }
    for sample in tqdm(data.batches(1), total=len(data), desc="forget Fisher", leave=False):
        model.zero_grad(set_to_none=True)
        answer_nll(model, sample.to(device))[0].sum().backward()  # [1] -> scalar
        for name, p in params.items():
            if p.grad is not None:
                g = p.grad.to(fisher[name].dtype)
                fisher[name].addcmul_(g, g)
    model.zero_grad(set_to_none=True)
    return {name: f.div_(len(data)) for name, f in fisher.items()}


def top_k_masks(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Boolean masks (on the CPU) selecting exactly the ``k`` largest scores over all tensors.

    A threshold (``score >= k-th largest``) would also take every weight tied with it - all of
    them when fewer than ``k`` scores are non-zero. Ties at the k-th value go instead to the
    earliest weights (tensor order, then flat position), so the count is always ``k`` and the
    choice is deterministic.
    """
    flat = torch.cat([s.flatten() for s in scores.values()])
    if not 0 <= k <= flat.numel():
        raise ValueError(f"k={k!r} is not allowed: expected 0 <= k <= {flat.numel()} (weights)")
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        kth = torch.topk(flat, k).values[-1]  # the k-th largest value (deterministic)
        chosen = flat > kth
        tied = torch.nonzero(flat == kth).flatten()
        chosen[tied[: k - int(chosen.sum())]] = True
    parts = chosen.cpu().split([s.numel() for s in scores.values()])
    return {name: part.view(s.shape) for (name, s), part in zip(scores.items(), parts, strict=True)}
