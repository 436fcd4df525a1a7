"""Which weights an unlearning method may change: the module mask and the baselines (METHOD.md §5).

Every selector returns boolean parameter masks (``{parameter name: mask}``), so one masked
optimiser serves all methods and they differ only in what they select:
``random_modules`` draws heads and filters at the module budget; ``full`` takes every weight;
``salun`` takes the weights with the largest forget-loss gradient magnitude and ``sa`` those
with the largest diagonal Fisher on the forget set, each the top ``1 - sparsity`` of all weights.
"""

from __future__ import annotations

import torch
from torch import nn

from mape_unlearn.core.architectures import layout_of
from mape_unlearn.core.encoding import TokenBatch
from mape_unlearn.core.losses import mean_answer_nll
from mape_unlearn.core.search import ModuleSelection, budget, warm_start_greedy

PARAMETER_SELECTORS: tuple[str, ...] = ("salun", "sa")


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
    """The top ``1 - sparsity`` weights by forget-set saliency, across all parameters.

    ``salun``: ``|grad of the forget loss|`` over the whole forget set. ``sa``: the diagonal
    empirical Fisher, ``mean over mini-batches of grad^2`` (mini-batch gradients stand in for
    per-sample ones, which would cost one backward pass per sample).
    """
    if kind not in PARAMETER_SELECTORS:
        raise ValueError(f"kind={kind!r} is not allowed: expected one of {PARAMETER_SELECTORS}")
    model.to(device).eval()
    params = dict(model.named_parameters())
    gradient = {name: torch.zeros_like(p) for name, p in params.items()}
    squared = {name: torch.zeros_like(p) for name, p in params.items()}
    batches = list(forget.batches(batch_size))
    for batch in batches:
        model.zero_grad(set_to_none=True)
        (mean_answer_nll(model, batch.to(device)) * len(batch) / len(forget)).backward()
        for name, p in params.items():
            if p.grad is not None:
                gradient[name] += p.grad
                squared[name] += (p.grad * len(forget) / len(batch)) ** 2 / len(batches)
    model.zero_grad(set_to_none=True)
    score = {name: g.abs() for name, g in gradient.items()} if kind == "salun" else squared
    flat = torch.cat([s.flatten() for s in score.values()])
    k = budget(flat.numel(), sparsity)
    threshold = torch.topk(flat, k).values[-1]
    return {name: (s >= threshold).cpu() for name, s in score.items()}


def searched_modules(
    forget: dict[str, torch.Tensor],
    retain: dict[str, torch.Tensor],
    retain_rows_kept: list[bool],
    sparsity: float,
    objective: str,
    lam: float,
    max_sweeps: int,
    quota: str,
    modules: str,
    budget_in: str,
    module_sizes: tuple[int, int],
) -> tuple[ModuleSelection, list[dict[str, float | str]]]:
    """The module search on stored mask gradients, retain rows of forgotten people dropped."""
    keep = torch.tensor(retain_rows_kept, dtype=torch.bool)
    return warm_start_greedy(
        forget["heads"],
        forget["filters"],
        retain["heads"][keep],
        retain["filters"][keep],
        sparsity=sparsity,
        objective=objective,
        lam=lam,
        max_sweeps=max_sweeps,
        quota=quota,
        modules=modules,
        budget_in=budget_in,
        module_sizes=module_sizes,
    )
