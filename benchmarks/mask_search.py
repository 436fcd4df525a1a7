"""Warm start plus greedy sweeps at GPT-2-small scale: the blocked search against the old path.

12 layers x 3072 filters and 12 x 12 heads over 2048 samples (1024 forget, 1024 retain) of
synthetic correlated gradients with heavy-tailed module scales, sparsity 0.9. In one run:
* the old exact path (one sequential step per swap, recomputing the new member's row ``A_c^T A``
  over all samples; kept below as ``old_search``, the code before issue 7),
* the blocked search of ``core/method/search.py`` (the target: under 5 s on 2 CPU cores),
* the blocked search on gradients stored as float16 (the low-precision storage the issue allows),
each objective recomputed exactly from the float32 gradients and divided by the old path's.
Wall and CPU seconds (medians), their old/new ratios and the load average are recorded. On
cores shared with other jobs, set ``OMP_WAIT_POLICY=PASSIVE``: otherwise each parallel operation
spins waiting for its second thread and wall time measures the queue. Prints and saves JSON.
Usage: ``[OMP_WAIT_POLICY=PASSIVE] python benchmarks/mask_search.py [--repeats 3] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mape_unlearn.core.method.search import (
    ModuleSelection,
    SearchSettings,
    budget,
    selection_objective,
    warm_start_greedy,
)

Grads = dict[str, torch.Tensor]


def gradients(n: int, layers: int, width: int, seed: int) -> torch.Tensor:
    """Correlated gradients with heavy-tailed module scales, as measured mask gradients have."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(n, layers, 8, generator=generator) @ torch.randn(
        8, width, generator=generator
    )
    scale = torch.randn(layers, width, generator=generator).exp()  # log-normal per module
    return (shared + torch.randn(n, layers, width, generator=generator)) * scale


class _OldLayerSearch:
    """The search before issue 7, one layer: a swap is a sequential step plus a row recompute."""

    def __init__(self, forget: torch.Tensor, retain: torch.Tensor, selected: torch.Tensor):
        self.a, self.r = forget, retain  # [n_f, m], [n_r, m], scaled (retain by sqrt(lam))
        self.diag = forget.pow(2).sum(0) - retain.pow(2).sum(0)
        self.members = torch.nonzero(selected).flatten()
        self.rows = self._rows(self.members)  # M[S, :]
        self.u = self.rows.sum(0)

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.a[:, index].T @ self.a - self.r[:, index].T @ self.r

    def value(self) -> float:
        return float(self.u[self.members].sum())

    def sweep(self, chunk: int = 128) -> int:
        outside = torch.ones_like(self.diag, dtype=torch.bool)
        outside[self.members] = False
        order = torch.nonzero(outside).flatten()
        order = order[torch.argsort(self.diag[order], descending=True, stable=True)]
        swaps, pos = 0, 0
        while pos < len(order) and len(self.members) > 0:
            cand = order[pos : pos + chunk]
            q = self.value()
            with_cand = q + 2 * self.u[cand] + self.diag[cand]
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


def old_search(forget: Grads, retain: Grads, sparsity: float, max_sweeps: int = 10) -> tuple:
    """The whole old path (forget_retain, lam = 1), for the time and objective ratios."""
    searches, selected = {}, {}
    for kind in ("heads", "filters"):
        a, r = (g[kind].double() for g in (forget, retain))
        a, r = a / a.pow(2).sum().sqrt(), r / r.pow(2).sum().sqrt()
        _, n_layers, width = a.shape
        score = a.pow(2).sum(0) - r.pow(2).sum(0)
        top = torch.argsort(score.flatten(), descending=True, stable=True)
        chosen = torch.zeros(n_layers * width, dtype=torch.bool)
        chosen[top[: budget(n_layers * width, sparsity)]] = True
        chosen = chosen.view(n_layers, width)
        searches[kind] = [
            _OldLayerSearch(a[:, layer], r[:, layer], chosen[layer]) for layer in range(n_layers)
        ]
    sweeps, swapped = 0, True
    while swapped and sweeps < max_sweeps:
        sweeps += 1
        swapped = any([s.sweep() for layers in searches.values() for s in layers])
    for kind, layers in searches.items():
        selected[kind] = torch.zeros(len(layers), len(layers[0].diag), dtype=torch.bool)
        for layer, s in enumerate(layers):
            selected[kind][layer, s.members] = True
    return ModuleSelection(selected["heads"], selected["filters"]), sweeps


def new_search(forget: Grads, retain: Grads, sparsity: float) -> tuple:
    selection, trace = warm_start_greedy(
        forget["heads"],
        forget["filters"],
        retain["heads"],
        retain["filters"],
        SearchSettings(sparsity),
    )
    return selection, len(trace) - 1


def timed(fn: Callable[[], tuple], repeats: int) -> tuple[dict[str, list[float]], tuple]:
    """Wall and CPU seconds (all threads) of ``repeats`` runs, and the result."""
    times: dict[str, list[float]] = {"wall": [], "cpu": []}
    result: tuple = ()
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times["wall"].append(time.perf_counter() - wall)
        times["cpu"].append(time.process_time() - cpu)
    return times, result


def objective(forget: Grads, retain: Grads, selection: ModuleSelection) -> dict[str, float]:
    """J of each module type, exactly (float64) from the float32 gradients."""
    return {
        kind: selection_objective(forget[kind], retain[kind], getattr(selection, kind), 1.0)
        for kind in ("heads", "filters")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    parser.add_argument("--repeats", type=int, default=3, help="runs of the new search")
    parser.add_argument("--old-repeats", type=int, default=1, help="runs of the old path")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]
    sparsity = 0.9
    forget = {"heads": gradients(1024, 12, 12, 0), "filters": gradients(1024, 12, 3072, 1)}
    retain = {"heads": gradients(1024, 12, 12, 2), "filters": gradients(1024, 12, 3072, 3)}
    half_f, half_r = ({k: t.half() for k, t in g.items()} for g in (forget, retain))

    old_times, (old, old_sweeps) = timed(
        lambda: old_search(forget, retain, sparsity), args.old_repeats
    )
    new_times, (new, new_sweeps) = timed(lambda: new_search(forget, retain, sparsity), args.repeats)
    half_times, (half, _) = timed(lambda: new_search(half_f, half_r, sparsity), 1)
    median = {
        name: {clock: statistics.median(t[clock]) for clock in ("wall", "cpu")}
        for name, t in (("old_path", old_times), ("blocked", new_times), ("float16", half_times))
    }
    exact = objective(forget, retain, old)
    relative = {
        name: {kind: value / exact[kind] for kind, value in objective(forget, retain, s).items()}
        for name, s in (("blocked", new), ("blocked_float16_storage", half))
    }
    result = {
        "seconds_old_path": median["old_path"],
        "seconds_blocked": median["blocked"],
        "seconds_blocked_float16_storage": median["float16"],
        "speedup_old_over_blocked": {
            clock: median["old_path"][clock] / median["blocked"][clock] for clock in ("wall", "cpu")
        },
        "runs_seconds": {"old_path": old_times, "blocked": new_times},
        "sweeps": {"old_path": old_sweeps, "blocked": new_sweeps},
        "objective_old_path": exact,
        "objective_relative_to_old_path": relative,
        "same_selection_as_old_path": bool(
            torch.equal(new.heads, old.heads) and torch.equal(new.filters, old.filters)
        ),
        "under_5_s": median["blocked"]["wall"] < 5.0,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
    }
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
