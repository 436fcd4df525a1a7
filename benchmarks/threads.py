"""Training steps of the default model with one torch thread against one per core, same run.

Why `make run` sets OMP_NUM_THREADS to the number of cores while `make test` keeps one thread
per worker: on an idle machine the threads share the work; on cores busy with another job they
spin waiting for each other (run this beside another job to see it). Prints the ratio and
saves it as JSON. Usage: ``python benchmarks/threads.py [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from workloads import SHAPES


def step_seconds(threads: int, steps: int) -> float:
    """Mean seconds of a forward, backward and AdamW step on a batch of 32 rows of 36 tokens."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=578, **SHAPES["default"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(5, 578, (32, 36), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        model(input_ids=tokens, labels=tokens).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(5):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    one, many = step_seconds(1, args.steps), step_seconds(args.threads, args.steps)
    result = {
        "threads": args.threads,
        "seconds_per_step_1_thread": one,
        f"seconds_per_step_{args.threads}_threads": many,
        "speed_up": one / many,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
