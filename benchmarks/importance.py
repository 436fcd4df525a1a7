"""Cost of exact per-sample mask gradients (docs/method.md §1) against two baselines, same run.

For the default model and a GPT-2-small-shaped one (random weights), over the same batches:
* plain training forward + backward (weight gradients), the target being <= 1.0x of it;
* a loop over single samples giving the same per-sample gradients, the target >= 10x slower.
Prints the ratios and saves them as JSON. Usage: ``python benchmarks/importance.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from workloads import SHAPES, random_batch

from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.method.losses import answer_nll

CPU = torch.device("cpu")


def seconds(fn, repeats: int = 2) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(shape: dict, n: int, batch_size: int, loop_samples: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=600, **shape)).eval()
    data = random_batch(n)

    def training_pass() -> None:
        for b in data.batches(batch_size):
            model.zero_grad(set_to_none=True)
            answer_nll(model, b)[0].sum().backward()

    def one_pass() -> None:
        per_sample_mask_gradients(model, data, batch_size, CPU)

    def single_sample_loop() -> None:
        per_sample_mask_gradients(model, data.select(slice(0, loop_samples)), 1, CPU)

    train, ours = seconds(training_pass), seconds(one_pass)
    loop = seconds(single_sample_loop, repeats=1) * n / loop_samples
    return {
        "training_seconds": train,
        "one_pass_seconds": ours,
        "single_sample_loop_seconds": loop,
        "one_pass_vs_training": ours / train,
        "loop_vs_one_pass": loop / ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    results = {
        "default": measure(SHAPES["default"], n=256, batch_size=32, loop_samples=64),
        "gpt2_small_shape": measure(
            SHAPES["gpt2_small_shape"], n=64, batch_size=32, loop_samples=16
        ),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
