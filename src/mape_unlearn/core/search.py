"""Warm-start greedy search for the heads and filters to unlearn (METHOD.md §2-3).

With the empirical Fisher as Hessian, perturbing a set S of modules changes the loss by about
``z^T F z`` with ``F = G^T G / n``, i.e. ``||sum_{i in S} G_i||^2 / n`` for the gradient columns
``G_i``. The objective for one module type is

    J(S) = ||sum_S A_i||^2 - lam * ||sum_S R_i||^2,
    A = G_forget / sqrt(n_f tr F_f),  R = G_retain / sqrt(n_r tr F_r),

so a singleton's J is the diagonal score ``I_f[i]/tr_f - lam I_r[i]/tr_r`` of the warm start.
Within a layer, ``J`` is ``1_S^T M 1_S`` with ``M = A^T A - R^T R``; the search keeps the rows
``M[S, :]`` and their column sums so that every add-one-drop-one move of a sweep is scored for
all candidates and members in one tensor operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Objective = Literal["forget_only", "forget_retain"]
OBJECTIVES: tuple[str, ...] = ("forget_only", "forget_retain")


@dataclass
class ModuleSelection:
    """Which modules are unlearned: ``heads: [L, H]`` and ``filters: [L, d_ff]``, bool."""

    heads: torch.Tensor
    filters: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"heads": self.heads, "filters": self.filters}


def budget(n_modules: int, sparsity: float) -> int:
    """Modules selected when a fraction ``sparsity`` of them stays frozen."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity!r} is not allowed: expected 0 <= sparsity < 1")
    return min(n_modules, math.ceil(round((1.0 - sparsity) * n_modules, 9)))


def _scaled(grads: torch.Tensor) -> torch.Tensor:
    """``[n, L, m]`` gradients divided by ``sqrt(n tr F)`` so that ``||sum A_i||^2`` is J."""
    g = grads.double()
    total = g.pow(2).sum()
    return g / total.sqrt() if total > 0 else g


class _LayerSearch:
    """Greedy refinement of one layer's selection for one module type (METHOD.md §3.2)."""

    def __init__(self, forget: torch.Tensor, retain: torch.Tensor | None, selected: torch.Tensor):
        self.a, self.r = forget, retain  # [n_f, m], [n_r, m] (retain already scaled by sqrt(lam))
        self.diag = forget.pow(2).sum(0) - (retain.pow(2).sum(0) if retain is not None else 0)
        self.members = torch.nonzero(selected).flatten()
        self.rows = self._rows(self.members)  # M[S, :]
        self.u = self.rows.sum(0)  # u_i = sum_{j in S} M[j, i]

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.a[:, index].T @ self.a
        if self.r is not None:
            rows -= self.r[:, index].T @ self.r
        return rows

    def value(self) -> float:
        return float(self.u[self.members].sum())

    def sweep(self, chunk: int = 128) -> int:
        """One pass over the unselected modules in descending score; returns the swap count.

        Candidates are scored a chunk at a time (every member against every candidate of the
        chunk, one tensor operation); the first improving candidate is swapped in, exactly as a
        one-by-one scan would, and the scan resumes right after it.
        """
        outside = torch.ones_like(self.diag, dtype=torch.bool)
        outside[self.members] = False
        order = torch.nonzero(outside).flatten()
        order = order[torch.argsort(self.diag[order], descending=True, stable=True)]
        swaps, pos = 0, 0
        while pos < len(order) and len(self.members) > 0:
            cand = order[pos : pos + chunk]
            q = self.value()
            with_cand = q + 2 * self.u[cand] + self.diag[cand]  # J(S + c)
            # J(S + c - i) for each member i (rows) and candidate c (columns)
            drop = (
                with_cand[None, :]
                - 2 * (self.u[self.members][:, None] + self.rows[:, cand])
                + self.diag[self.members][:, None]
            )
            best, which = drop.max(dim=0)
            better = torch.nonzero(best > q + 1e-12 * max(1.0, abs(q))).flatten()
            if len(better) == 0:
                pos += len(cand)
                continue
            j = int(better[0])
            slot, c = int(which[j]), cand[j]
            new_row = self._rows(c.view(1))[0]
            self.u += new_row - self.rows[slot]
            self.rows[slot] = new_row
            self.members[slot] = c
            swaps += 1
            pos += j + 1
        return swaps


def warm_start_greedy(
    forget_heads: torch.Tensor,
    forget_filters: torch.Tensor,
    retain_heads: torch.Tensor | None,
    retain_filters: torch.Tensor | None,
    sparsity: float,
    objective: Objective = "forget_retain",
    lam: float = 1.0,
    max_sweeps: int = 10,
    greedy: bool = True,
) -> tuple[ModuleSelection, list[dict[str, float | str]]]:
    """Select heads and filters to unlearn; returns the selection and the objective per stage.

    Gradients are ``[n, L, H]`` and ``[n, L, d_ff]``. Each module type has its own budget
    ``ceil((1 - sparsity) * count)``. The trace has one entry for the warm start and one per
    sweep, with the objective of each type and the number of swaps.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not allowed: expected one of {OBJECTIVES}")
    if lam < 0:
        raise ValueError(f"lam={lam!r} is not allowed: expected lam >= 0")
    use_retain = objective == "forget_retain" and lam > 0
    if use_retain and (retain_heads is None or retain_filters is None):
        raise ValueError("objective='forget_retain' needs retain-set mask gradients")
    selected, searches = {}, {}
    for kind, forget, retain in (
        ("heads", forget_heads, retain_heads),
        ("filters", forget_filters, retain_filters),
    ):
        a = _scaled(forget)
        r = _scaled(retain) * math.sqrt(lam) if use_retain else None
        _, n_layers, width = a.shape
        score = a.pow(2).sum(0) - (r.pow(2).sum(0) if r is not None else 0)  # [L, m]
        k = budget(n_layers * width, sparsity)
        top = torch.argsort(score.flatten(), descending=True, stable=True)[:k]
        chosen = torch.zeros(n_layers * width, dtype=torch.bool)
        chosen[top] = True
        chosen = chosen.view(n_layers, width)
        searches[kind] = [
            _LayerSearch(a[:, layer], r[:, layer] if r is not None else None, chosen[layer])
            for layer in range(n_layers)
        ]
        selected[kind] = chosen

    def record(stage: str, swaps: dict[str, int]) -> dict[str, float | str]:
        entry: dict[str, float | str] = {"stage": stage}
        for kind, layers in searches.items():
            entry[f"objective_{kind}"] = sum(s.value() for s in layers)
            entry[f"swaps_{kind}"] = swaps[kind]
        return entry

    trace = [record("warm_start", {"heads": 0, "filters": 0})]
    for sweep in range(1, max_sweeps + 1 if greedy else 1):
        swaps = {kind: sum(s.sweep() for s in layers) for kind, layers in searches.items()}
        trace.append(record(f"sweep_{sweep}", swaps))
        if not any(swaps.values()):
            break
    for kind, layers in searches.items():
        selected[kind] = torch.zeros_like(selected[kind])
        for layer, s in enumerate(layers):
            selected[kind][layer, s.members] = True
    return ModuleSelection(selected["heads"], selected["filters"]), trace


def selection_objective(
    forget: torch.Tensor, retain: torch.Tensor | None, selected: torch.Tensor, lam: float
) -> float:
    """``J`` summed over layers (within-layer blocks), straight from ``[n, L, m]`` gradients."""
    z = selected.double()
    value = float((_scaled(forget) * z).sum(-1).pow(2).sum())
    if retain is not None and lam > 0:
        value -= lam * float((_scaled(retain) * z).sum(-1).pow(2).sum())
    return value
