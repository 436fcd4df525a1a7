"""Time of the warm start plus greedy sweeps at GPT-2-small scale, and low-precision storage.

12 layers x 3072 filters and 12 x 12 heads over 2048 samples (1024 forget, 1024 retain) of
synthetic correlated gradients, sparsity 0.9. Also runs the search on gradients stored as
float16 and reports the objective (recomputed exactly) relative to float32 storage. Prints and
saves JSON. Usage: ``python benchmarks/mask_search.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mape_unlearn.core.search import selection_objective, warm_start_greedy


def gradients(n: int, layers: int, width: int, seed: int) -> torch.Tensor:
    """Correlated gradients with heavy-tailed module scales, as measured mask gradients have."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(n, layers, 8, generator=generator) @ torch.randn(
        8, width, generator=generator
    )
    scale = torch.randn(layers, width, generator=generator).exp()  # log-normal per module
    return (shared + torch.randn(n, layers, width, generator=generator)) * scale


def run(forget: dict, retain: dict) -> tuple[float, object, list]:
    start = time.perf_counter()
    selection, trace = warm_start_greedy(
        forget["heads"], forget["filters"], retain["heads"], retain["filters"], sparsity=0.9
    )
    return time.perf_counter() - start, selection, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    forget = {"heads": gradients(1024, 12, 12, 0), "filters": gradients(1024, 12, 3072, 1)}
    retain = {"heads": gradients(1024, 12, 12, 2), "filters": gradients(1024, 12, 3072, 3)}
    exact_seconds, exact, trace = run(forget, retain)
    half = {k: {n: t.half() for n, t in d.items()} for k, d in (("f", forget), ("r", retain))}
    half_seconds, approx, _ = run(half["f"], half["r"])
    exact_value = selection_objective(forget["filters"], retain["filters"], exact.filters, 1.0)
    half_value = selection_objective(forget["filters"], retain["filters"], approx.filters, 1.0)
    result = {
        "seconds_float32": exact_seconds,
        "seconds_float16_storage": half_seconds,
        "sweeps": len(trace) - 1,
        "filter_objective_warm_start": trace[0]["objective_filters"],
        "filter_objective_after_sweeps": trace[-1]["objective_filters"],
        "float16_objective_relative_to_float32": half_value / exact_value,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
