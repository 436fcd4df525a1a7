"""Warm-start greedy search for the heads and filters to unlearn (docs/method.md §2-3).

With the empirical Fisher as Hessian, perturbing a set S of modules changes the loss by about
``z^T F z`` with ``F = G^T G / n``, i.e. ``||sum_{i in S} G_i||^2 / n`` for the gradient columns
``G_i``. The objective for one module type is

    J(S) = ||sum_S A_i||^2 - lam * ||sum_S R_i||^2,
    A = G_forget / sqrt(n_f tr F_f),  R = G_retain / sqrt(n_r tr F_r),

so a singleton's J is the diagonal score ``I_f[i]/tr_f - lam I_r[i]/tr_r`` of the warm start.
Within a layer ``J(S) = 1_S^T M 1_S`` with ``M = A^T A - lam R^T R``. With ``u = M 1_S``,
swapping candidate ``c`` in for member ``i`` changes J by (eq. G)

    J(S + c - i) - J(S) = 2 u_c + M_cc - 2 u_i + M_ii - 2 M_ic,

so one tensor operation scores every member against every candidate. The search keeps, per
layer, the members' columns ``M[:, S]``. A sweep is the sequential scan of docs/method.md §3.2
(candidates in descending score, each swapped for its best member when that raises J), run a
block of candidates at a time: the scan walks the small matrix of M over the members and the
block, M between two candidates is computed only when the first one comes in, and the columns
of the modules swapped in are computed together, FLUSH at a time. The swaps are exactly those
of a one-by-one scan (tests/core/test_search.py checks against a dense reference); the cost is
a few matrix products per block instead of a pass over all samples per swap.

Two variants (issue 9's study). A budget in parameters: one budget of weights for both types,
both normalised by the same traces, the warm start taking modules by score per weight (a greedy
knapsack); the sweeps then keep each layer's counts as always. The ratio objective
``F(S) / R(S)`` (the forget and the retain part of J): Dinkelbach's iteration, each step the
search above with ``lam`` = the last ratio, from a fresh warm start and from the last selection
(which can only raise the ratio), kept while the ratio rises; it ends where no single swap
raises the ratio, a local optimum like the rest of the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from pydantic import NonNegativeFloat, NonNegativeInt, field_validator

from mape_unlearn.core.runtime.settings import settings

Objective = Literal["forget_only", "forget_retain", "ratio"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
# What the sparsity budget counts: modules of each type, or the parameters of both together.
Budget = Literal["modules", "parameters"]
BUDGETS: tuple[str, ...] = get_args(Budget)
# Searches of the ratio objective at most (Dinkelbach's iteration; it usually settles in 3-4).
RATIO_ITERATIONS = 8
# Where the budget of a module type goes: the best modules of the whole model, or the same global
# budget split evenly over layers (counts differ by at most one; _layer_shares). A layer's count
# is fixed by the warm start either way; the sweeps keep it.
Quota = Literal["global", "per_layer"]
QUOTAS: tuple[str, ...] = get_args(Quota)
# Which module types are unlearned; a type left out keeps every module frozen.
MODULE_TYPES: dict[str, tuple[str, ...]] = {
    "both": ("heads", "filters"),
    "heads": ("heads",),
    "filters": ("filters",),
}
Modules = Literal["both", "heads", "filters"]


@settings
class SearchSettings:
    """The module search (parameters_mask_search.yml, docs/method.md §2-3)."""

    sparsity: float  # the share of modules that stays frozen
    objective: Objective = "forget_retain"
    lam: NonNegativeFloat = 1.0  # weight of the retain term of J
    max_sweeps: NonNegativeInt = 10  # 0: the warm start alone
    quota: Quota = "global"
    modules: Modules = "both"
    budget_in: Budget = "modules"

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"sparsity={value!r} is not allowed: expected 0 <= sparsity < 1")
        return value


# A swap must raise J by more than this share of |J| (at least of 1): float64 rounding of the
# gains is ~1e-14 relative, so nothing below it is a real improvement.
RELATIVE_TOLERANCE = 1e-12
# Candidates scanned per block: a swap costs BLOCK x n (M between the new member and the
# block's later candidates), a block a few gathers of [k + BLOCK, k].
BLOCK = 256
# Modules swapped in whose columns M[:, i] wait to be computed in one product (_LayerSearch):
# until then each block computes their entries on it, FLUSH x (k + BLOCK) x n at most.
FLUSH = 64


@dataclass
class ModuleSelection:
    """Which modules are unlearned: ``heads: [L, H]`` and ``filters: [L, d_ff]``, bool."""

    heads: torch.Tensor
    filters: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"heads": self.heads, "filters": self.filters}


def budget(n_modules: int, sparsity: float) -> int:
    """Modules selected when a fraction ``sparsity`` of them stays frozen (0 <= sparsity < 1,
    checked by :class:`SearchSettings`)."""
    return min(n_modules, math.ceil(round((1.0 - sparsity) * n_modules, 9)))


def _scaled(grads: torch.Tensor) -> torch.Tensor:
    """``[n, L, m]`` gradients divided by ``sqrt(n tr F)`` so that ``||sum A_i||^2`` is J."""
    g = grads.double()
    total = g.pow(2).sum()
    return g / total.sqrt() if total > 0 else g


def _energy(grads: torch.Tensor) -> torch.Tensor:
    """``sum_j g_j^2`` per module, ``[L, m]`` in float64, one layer at a time to bound memory."""
    return torch.stack(
        [grads[:, layer].double().square_().sum(0) for layer in range(grads.shape[1])]
    )


def _scan_block(
    fisher: np.ndarray,
    u: np.ndarray,
    diag: np.ndarray,
    k: int,
    value: float,
    cand_grads: torch.Tensor,
    weight: torch.Tensor,
) -> tuple[np.ndarray, int]:
    """Scan candidates ``k..`` of a block in order; returns who is inside after, and the swaps.

    ``fisher`` is M on the block, members first, with the candidates' own entries on its
    diagonal; ``u = M 1_S`` and ``diag`` are on the same indices. Each candidate replaces its
    best member if that raises J (eq. G). The scan reads M between two candidates only once the
    earlier one is in, so that column is computed when it comes in, from ``cand_grads``
    (``[P, n]``) and ``weight``: one small product per swap instead of all of ``M[C, C]``.
    """
    inside = np.zeros(len(u), dtype=bool)
    inside[:k] = True
    u = u.copy()
    keep = np.where(inside, diag - 2 * u, -np.inf)  # M_ii - 2 u_i, members only
    swaps = 0
    for c in range(k, len(u)):
        drop = keep - 2 * fisher[c]
        i = int(drop.argmax())
        gain = 2 * u[c] + diag[c] + drop[i]  # eq. G with the best member i
        if gain > RELATIVE_TOLERANCE * max(1.0, abs(value)):
            p = c - k
            later = torch.mv(cand_grads[p + 1 :], weight * cand_grads[p])  # M[later cand., c]
            fisher[c + 1 :, c] = fisher[c, c + 1 :] = later.numpy()
            inside[c], inside[i] = True, False
            u += fisher[c] - fisher[i]
            keep = np.where(inside, diag - 2 * u, -np.inf)
            value += gain
            swaps += 1
    return inside, swaps


class _LayerSearch:
    """Greedy refinement of one layer's selection for one module type (docs/method.md §3.2).

    Members sit in slots and ``cols[:, slot] = M[:, member]``. A module swapped in takes the
    slot of the one it replaces and is *pending* until its column is computed, together with
    the other pending ones, once FLUSH of them have gathered or at the end of the sweep: columns
    then come from one efficient matrix product, and a module that comes and goes within a
    sweep costs none.
    """

    def __init__(
        self, grads: torch.Tensor, weight: torch.Tensor, diag: torch.Tensor, selected: torch.Tensor
    ):
        # grads: [m, n], each module's forget then retain gradients, float64 (module-major, so
        # gathering modules reads contiguous rows); weight: [n], 1/(n_f tr F_f) on forget
        # samples and -lam/(n_r tr F_r) on retain samples, so M = grads diag(weight) grads^T
        self.g, self.w = grads, weight
        self.diag = diag  # M_ii, the warm-start score
        self.members = torch.nonzero(selected).flatten()
        self.cols = self._cols(self.members).contiguous()  # [m, k], stale in pending slots
        self.pending = torch.zeros(len(self.members), dtype=torch.bool)

    def _cols(self, index: torch.Tensor) -> torch.Tensor:
        """``M[:, index]``, one matrix product over all samples (as rows: faster for few)."""
        return ((self.g.index_select(0, index) * self.w) @ self.g.T).T

    def _flush(self) -> None:
        """Compute the pending members' columns, all in one product."""
        slots = torch.nonzero(self.pending).flatten()
        if len(slots) > 0:
            self.cols.index_copy_(1, slots, self._cols(self.members[slots]))
            self.pending[slots] = False

    def value(self) -> float:
        """``J(S) = 1_S^T M 1_S``, between sweeps (nothing pending)."""
        return float(self.cols.index_select(0, self.members).sum())

    def sweep(self) -> int:
        """One pass over the unselected modules in descending score; returns the swap count.

        Each candidate in turn is swapped in for the member whose removal leaves the best J, if
        that raises J, exactly as a one-by-one scan; the candidates are taken a block at a time.
        """
        outside = torch.ones_like(self.diag, dtype=torch.bool)
        outside[self.members] = False
        order = torch.nonzero(outside).flatten()
        order = order[torch.argsort(self.diag[order], descending=True, stable=True)]
        swaps = sum(
            self._scan(order[start : start + BLOCK]) for start in range(0, len(order), BLOCK)
        )
        self._flush()
        return swaps

    def _scan(self, cand: torch.Tensor) -> int:
        """The scan over the candidates ``cand``, exact on the block of M over S and ``cand``."""
        members, k = self.members, len(self.members)
        if k == 0:
            return 0
        index = torch.cat([members, cand])  # the block: members by slot, then candidates
        m_bs = self.cols.index_select(0, index)  # M[block, S], stale in the pending columns
        pending = torch.nonzero(self.pending).flatten()
        g_c = self.g.index_select(0, cand) if len(pending) > 0 else None  # [P, n]
        if g_c is not None:  # the pending columns: M[S, Q] by symmetry, M[Q, Q], M[C, Q]
            g_q = self.g.index_select(0, members[pending]) * self.w
            m_qs = m_bs[pending]
            m_qs[:, pending] = g_q @ self.g.index_select(0, members[pending]).T
            m_bs[:k, pending] = m_qs.T
            m_bs[k:, pending] = g_c @ g_q.T
        u = m_bs.sum(1)  # u = M 1_S on the block
        value = float(u[:k].sum())  # J(S) = 1_S^T u
        # eq. G for every candidate (rows) and member (columns) at the block's start
        drop = (self.diag[members] - 2 * u[:k]) - 2 * m_bs[k:]
        gain = drop.max(1).values + 2 * u[k:] + self.diag[cand]
        improving = torch.nonzero(gain > RELATIVE_TOLERANCE * max(1.0, abs(value))).flatten()
        if len(improving) == 0:
            return 0
        first = int(improving[0])  # the state, so each gain, is unchanged up to this one
        g_c = self.g.index_select(0, cand[first:]) if g_c is None else g_c[first:]
        cand, keep = cand[first:], torch.cat([torch.arange(k), torch.arange(k + first, len(index))])
        fisher = torch.zeros(len(keep), len(keep), dtype=torch.float64)
        fisher[:, :k] = m_bs[keep]
        fisher[:k, k:] = m_bs[k + first :].T  # M[S, C] by symmetry; M[C, C] filled by the scan
        fisher[k:, k:].diagonal().copy_(self.diag[cand])
        inside, swaps = _scan_block(
            fisher.numpy(),
            u[keep].numpy(),
            self.diag[index[keep]].numpy(),
            k,
            value,
            g_c,
            self.w,
        )
        slots, added = torch.nonzero(torch.from_numpy(~inside[:k])).flatten(), cand[inside[k:]]
        self.members[slots] = added
        self.pending[slots] = True
        if int(self.pending.sum()) >= FLUSH:
            self._flush()
        return swaps


def _fill(density: torch.Tensor, sizes: torch.Tensor, capacity: int) -> torch.Tensor:
    """Greedy knapsack: modules by descending value per parameter, each taken if it still fits."""
    taken = torch.zeros_like(density, dtype=torch.bool)
    left, smallest = capacity, int(sizes.min())
    for index in torch.argsort(density, descending=True, stable=True).tolist():
        if left < smallest:
            break
        if sizes[index] <= left:
            taken[index], left = True, left - int(sizes[index])
    return taken


def _layer_shares(total: int, next_best: torch.Tensor) -> torch.Tensor:
    """Split a global budget ``total`` over layers as evenly as possible, exactly: each layer
    gets ``total // L`` and the ``total % L`` layers with the highest ``next_best`` (``[L]``,
    the score of what one more unit would buy there; ties to the earlier layer) one more."""
    n_layers = len(next_best)
    shares = torch.full((n_layers,), total // n_layers, dtype=torch.long)
    shares[torch.argsort(next_best, descending=True, stable=True)[: total % n_layers]] += 1
    return shares


def _top_modules(score: torch.Tensor, sparsity: float, quota: str) -> torch.Tensor:
    """The ``budget(count, sparsity)`` top-scoring of ``[L, m]`` modules, over the whole model
    or shared across layers by :func:`_layer_shares` (ranked by each layer's next module)."""
    chosen = torch.zeros_like(score, dtype=torch.bool)
    total = budget(score.numel(), sparsity)
    if quota == "global":
        top = torch.argsort(score.flatten(), descending=True, stable=True)[:total]
        chosen.view(-1)[top] = True
        return chosen
    ordered = torch.sort(score, dim=1, descending=True, stable=True)
    floor = min(total // score.shape[0], score.shape[1] - 1)  # = m only when every module is in
    shares = _layer_shares(total, ordered.values[:, floor])
    for layer, share in enumerate(shares.tolist()):
        chosen[layer, ordered.indices[layer, :share]] = True
    return chosen


def _warm_start(
    scores: dict[str, torch.Tensor],
    sparsity: float,
    quota: str,
    included: tuple[str, ...],
    sizes: dict[str, int] | None,
) -> dict[str, torch.Tensor]:
    """The top-scoring ``[L, m]`` modules of each type under the budget: ``ceil((1 - sparsity)
    * count)`` modules of each type (``sizes=None``), or one budget of ``ceil((1 - sparsity) *
    parameters)`` filled by score per parameter. ``quota="per_layer"`` splits that global budget
    exactly over layers (:func:`_layer_shares`), so the total is the same as ``"global"``'s."""
    chosen = {kind: torch.zeros_like(score, dtype=torch.bool) for kind, score in scores.items()}
    if sizes is None:
        for kind in included:
            chosen[kind] = _top_modules(scores[kind], sparsity, quota)
        return chosen
    density = {k: scores[k] / sizes[k] for k in included}
    capacity = budget(sum(scores[k].numel() * sizes[k] for k in included), sparsity)
    groups = [(slice(None), capacity)]
    if quota == "per_layer":  # the remainder's parameters go to the layers of the densest module
        densest = torch.stack([d.max(1).values for d in density.values()]).max(0).values
        shares = _layer_shares(capacity, densest).tolist()
        groups = [(slice(layer, layer + 1), share) for layer, share in enumerate(shares)]
    for group, share in groups:
        parts = [density[k][group] for k in included]
        weights = [torch.full((p.numel(),), sizes[k]) for p, k in zip(parts, included, strict=True)]
        taken = _fill(torch.cat([p.flatten() for p in parts]), torch.cat(weights), share)
        for kind, part, piece in zip(
            included, parts, taken.split([p.numel() for p in parts]), strict=True
        ):
            chosen[kind][group] = piece.view_as(part)
    return chosen


def _refine(
    sets: list[torch.Tensor],
    scales: list[float],
    score: torch.Tensor,
    chosen: torch.Tensor,
    n_sweeps: int,
) -> tuple[torch.Tensor, list[list[float]], list[list[int]]]:
    """The greedy sweeps of one module type from its warm start, a layer at a time.

    Returns the selection and, per layer, J after the warm start and each sweep, and the swaps
    of each sweep. Only one layer's gradients are held in float64 (as ``[m, n]``) at a time.
    """
    # sample weights of M = G^T diag(w) G: 1/(n_f tr F_f) forget, -lam/(n_r tr F_r) retain
    weight = torch.cat(
        [torch.full((len(g),), s, dtype=torch.float64) for g, s in zip(sets, scales, strict=True)]
    )
    chosen = chosen.clone()
    values: list[list[float]] = []
    swaps: list[list[int]] = []
    for layer in range(chosen.shape[0]):
        if not chosen[layer].any():  # nothing to swap: J = 0
            values.append([0.0])
            swaps.append([])
            continue
        grads = torch.cat([g[:, layer] for g in sets]).T.contiguous().double()  # [m, n]
        search = _LayerSearch(grads, weight, score[layer], chosen[layer])
        layer_values, layer_swaps = [search.value()], []
        while len(layer_swaps) < n_sweeps and (not layer_swaps or layer_swaps[-1] > 0):
            layer_swaps.append(search.sweep())
            layer_values.append(search.value())
        values.append(layer_values)
        swaps.append(layer_swaps)
        chosen[layer] = False
        chosen[layer, search.members] = True
    return chosen, values, swaps


def _norm(grads: torch.Tensor, chosen: torch.Tensor) -> float:
    """``sum over layers of ||sum_{i in S} g_i||^2`` of unscaled ``[n, L, m]`` gradients."""
    return sum(
        float(grads[:, layer, chosen[layer]].double().sum(1).square().sum())
        for layer in range(grads.shape[1])
    )


def warm_start_greedy(
    forget_heads: torch.Tensor,
    forget_filters: torch.Tensor,
    retain_heads: torch.Tensor | None,
    retain_filters: torch.Tensor | None,
    settings: SearchSettings,
    module_sizes: tuple[int, int] = (1, 1),
) -> tuple[ModuleSelection, list[dict[str, float | str]]]:
    """Select heads and filters to unlearn; returns the selection and the objective per stage.

    Gradients are ``[n, L, H]`` and ``[n, L, d_ff]``. ``budget_in="modules"``: each module type
    has its own budget ``ceil((1 - sparsity) * count)`` and its own Fisher normalisation.
    ``"parameters"``: one budget of ``ceil((1 - sparsity) * parameters)``, a head weighing
    ``module_sizes[0]`` parameters and a filter ``module_sizes[1]``; both types are normalised
    by the same traces (a mask gradient is a loss change either way) and the warm start takes
    modules by score per parameter while they fit. The budget goes to the best modules of the
    whole model (``quota="global"``) or is split evenly over layers (``"per_layer"``: the same
    total, ``total // L`` per layer and one more for the ``total % L`` layers whose next module
    scores best); the warm start fixes each layer's count of each type and the sweeps keep it.
    ``modules`` selects which types are unlearned (``both``, ``heads``, ``filters``). Every
    swap raises J, so J never decreases. The trace has one entry for the warm start and one per
    sweep, with the objective of each type and the number of swaps; it ends at the first sweep
    without a swap (then no single swap within a layer raises J by more than
    ``RELATIVE_TOLERANCE * max(1, |J_layer|)``) or at ``max_sweeps``. ``objective="ratio"``
    maximises ``F(S) / R(S)``, the forget over the retain part of J, by Dinkelbach's
    iteration: search with ``lam`` (the start), then again with ``lam`` = the ratio found,
    while the ratio rises (at most ``RATIO_ITERATIONS`` searches).
    """
    if min(module_sizes) < 1:
        raise ValueError(f"module_sizes={module_sizes!r} is not allowed: expected sizes >= 1")
    objective = settings.objective
    use_retain = objective == "ratio" or (objective == "forget_retain" and settings.lam > 0)
    if use_retain and (retain_heads is None or retain_filters is None):
        raise ValueError(f"objective={objective!r} needs retain-set mask gradients")
    sets = {
        "heads": [forget_heads, retain_heads] if use_retain else [forget_heads],
        "filters": [forget_filters, retain_filters] if use_retain else [forget_filters],
    }
    search = _Search(sets, settings, dict(zip(("heads", "filters"), module_sizes, strict=True)))
    found = search.run(settings.lam)
    chosen, values, swaps = search.dinkelbach(found) if objective == "ratio" else found
    return ModuleSelection(chosen["heads"], chosen["filters"]), _trace(values, swaps)


Searched = tuple[dict[str, torch.Tensor], dict[str, list], dict[str, list]]


class _Search:
    """One search of every module type at a given retain weight, from the warm start or from a
    given selection; the ratio objective runs it again (Dinkelbach's iteration)."""

    def __init__(
        self, sets: dict[str, list[torch.Tensor]], settings: SearchSettings, sizes: dict[str, int]
    ) -> None:
        self.sets, self.settings, self.sizes = sets, settings, sizes
        self.included = MODULE_TYPES[settings.modules]
        energies = {kind: [_energy(g) for g in grads] for kind, grads in sets.items()}
        self.energies = energies
        # 1 / tr F of each side: per type, or over the unlearned types together (one budget)
        self.units: dict[str, list[float]] = {}
        for kind in sets:
            pooled = (
                self.included
                if settings.budget_in == "parameters" and kind in self.included
                else (kind,)
            )
            totals = [
                sum(float(energies[k][side].sum()) for k in pooled)
                for side in range(len(sets[kind]))
            ]
            self.units[kind] = [1.0 / t if t > 0 else 1.0 for t in totals]

    def run(self, weight: float, start: dict[str, torch.Tensor] | None = None) -> Searched:
        """Warm start (or ``start``), then the greedy sweeps, with ``lam = weight``."""
        scales = {
            k: [u * (1.0 if side == 0 else -weight) for side, u in enumerate(self.units[k])]
            for k in self.sets
        }
        scores = {  # warm start: J({i})
            k: sum(s * e for s, e in zip(scales[k], self.energies[k], strict=True))
            for k in self.sets
        }
        s = self.settings
        sizes = self.sizes if s.budget_in == "parameters" else None
        warm = start or _warm_start(scores, s.sparsity, s.quota, self.included, sizes)
        chosen, values, swaps = {}, {}, {}
        for k in self.sets:
            chosen[k], values[k], swaps[k] = _refine(
                self.sets[k], scales[k], scores[k], warm[k], s.max_sweeps
            )
        return chosen, values, swaps

    def dinkelbach(self, found: Searched) -> Searched:
        """Search again with ``lam`` = the last ratio, from a fresh warm start and from the
        last selection, while the ratio rises."""
        ratio = _ratio(self.sets, self.units, found[0])
        for _ in range(RATIO_ITERATIONS - 1):
            if not math.isfinite(ratio):
                break
            candidates = [self.run(ratio), self.run(ratio, found[0])]
            improved, best = max(
                (_ratio(self.sets, self.units, c[0]), i) for i, c in enumerate(candidates)
            )
            if improved <= ratio * (1 + RELATIVE_TOLERANCE):
                break
            found, ratio = candidates[best], improved
        return found


def _trace(values: dict[str, list], swaps: dict[str, list]) -> list[dict[str, float | str]]:
    """J of each type and the swaps after the warm start and each sweep.

    A layer is left as it is after a sweep without swaps, so the whole search's sweep s is
    each layer's sweep min(s, its last): the same trace as running every layer sweep by sweep.
    """
    trace: list[dict[str, float | str]] = []
    for sweep in range(max(len(s) for kind in swaps.values() for s in kind) + 1):
        entry: dict[str, float | str] = {"stage": f"sweep_{sweep}" if sweep else "warm_start"}
        for kind in ("heads", "filters"):
            entry[f"objective_{kind}"] = sum(v[min(sweep, len(v) - 1)] for v in values[kind])
            entry[f"swaps_{kind}"] = sum(s[sweep - 1] for s in swaps[kind] if 0 < sweep <= len(s))
        trace.append(entry)
    return trace


def _ratio(
    sets: dict[str, list[torch.Tensor]],
    units: dict[str, list[float]],
    chosen: dict[str, torch.Tensor],
) -> float:
    """``F(S) / R(S)``: the forget and the retain part of J, each over both module types."""
    forget, retain = (
        sum(units[k][side] * _norm(sets[k][side], chosen[k]) for k in sets) for side in (0, 1)
    )
    return forget / retain if retain > 0 else math.inf


def selection_objective(
    forget: torch.Tensor, retain: torch.Tensor | None, selected: torch.Tensor, lam: float
) -> float:
    """``J`` summed over layers (within-layer blocks), straight from ``[n, L, m]`` gradients."""
    z = selected.double()
    value = float((_scaled(forget) * z).sum(-1).pow(2).sum())
    if retain is not None and lam > 0:
        value -= lam * float((_scaled(retain) * z).sum(-1).pow(2).sum())
    return value
