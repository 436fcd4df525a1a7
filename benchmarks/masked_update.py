"""Peak memory and step time of masked unlearning: compact slices vs dense masks vs full, one run.

For the default model and a GPT-2-small-shaped one (random weights), sparsity 0.9 (random heads
and filters at the module budget), rule ``gd``, batches of 32 x 24 tokens like the default data:
* ``full``: full-parameter unlearning (all-ones masks), the baseline;
* ``dense``: the module masks on the dense masked path (full gradients times 0/1 masks);
* ``compact``: the same masks as trainable row/column deltas (``core/method/compact.py``),
targets <= 0.5x the baseline's peak memory and <= 1x its step time.
Peak memory is measured in a fresh subprocess per configuration: on CUDA
``max_memory_allocated``, on CPU the resident-set high-water mark (reset through
``/proc/self/clear_refs`` after building the model; glibc told to map large blocks so freed
tensors leave the resident set), both minus the memory in use before ``masked_unlearn``: the
working copy of the model, gradients, optimiser state and activations of the steps. With glibc's
default (adaptive) threshold, freed blocks up to 32 MB stay resident and the CPU peak also counts
that fragmentation: reported beside it as ``peak_mb_default_malloc``. Step time
is ``(t(1 + n) - t(1)) / n`` over whole ``masked_unlearn`` calls, configurations interleaved,
median of the repeats, in wall time and in this process's CPU time (the cores are shared).
Prints the ratios and saves JSON. Usage:
``python benchmarks/masked_update.py [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from workloads import SHAPES, random_batch

from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.selection import all_parameters, random_modules
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.method.unlearning import masked_unlearn, optimizer_state_bytes

CONFIGS = ("full", "dense", "compact")
SPARSITY = 0.9


def setup(shape: str, config: str) -> tuple[GPT2LMHeadModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=600, **SHAPES[shape])).eval()
    if config == "full":
        return model, all_parameters(model)
    selection = random_modules(model, SPARSITY, seed=0)
    return model, module_weight_masks(model, selection.heads, selection.filters)


def unlearn(model, masks, config: str, steps: int, device: torch.device) -> None:
    settings = UnlearnSettings(
        rule="gd", lr=1e-3, max_steps=steps, alpha=10.0, beta=0.1, damping=1.0,
        kl_weight=0.0, batch_size=32, eval_every=steps, probe_retain_samples=32,
        stop_metric="answer_token_accuracy", forget_tokens="answer", seed=0,
    )  # fmt: skip
    forget, retain = random_batch(32, seed=1), random_batch(64, seed=2)
    masked_unlearn(model, forget, retain, masks, settings, None, device, compact=config != "dense")


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_bytes(shape: str, config: str, steps: int) -> dict[str, float]:
    """In this (fresh) process: the memory ``masked_unlearn`` adds at its peak."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, masks = setup(shape, config)
    model_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    if device.type == "cuda":
        model.to(device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        unlearn(model, masks, config, steps, device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # high-water mark := current RSS
        before = _status_kib("VmRSS")
        unlearn(model, masks, config, steps, device)
        peak = (_status_kib("VmHWM") - before) * 1024
    return {
        "device": device.type,
        "peak_mb": peak / 2**20,
        "model_mb": model_bytes / 2**20,
        "optimizer_state_mb": optimizer_state_bytes(model, masks, "gd", compact=config != "dense")
        / 2**20,
    }


def measure_memory(shape: str, config: str, steps: int) -> dict[str, float]:
    """``peak_bytes`` in a fresh subprocess, so earlier allocations cannot hide the peak."""
    threads = ["--threads", str(torch.get_num_threads())]
    args = [sys.executable, __file__, *threads, "--child", shape, config, str(steps)]
    results = []
    # a fixed mmap threshold: freed large tensors go back to the OS instead of staying resident
    for extra in ({"MALLOC_MMAP_THRESHOLD_": "65536"}, {}):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | extra
        out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results[0] | {"peak_mb_default_malloc": results[1]["peak_mb"]}


def step_seconds(shape: str, steps: int, repeats: int) -> dict[str, dict]:
    """Median per-step wall and CPU time of each configuration, ``(t(1 + steps) - t(1)) / steps``.

    The CPU time of this process is reported beside the wall time because the cores are shared:
    other processes stretch wall time much more than the work done.
    """
    runs = {clock: {config: [] for config in CONFIGS} for clock in ("wall", "cpu")}
    prepared = {config: setup(shape, config) for config in CONFIGS}
    device = torch.device("cpu")
    unlearn(*prepared["full"], "full", 1, device)  # warm-up
    for repeat in range(repeats):
        for config in CONFIGS[repeat % 3 :] + CONFIGS[: repeat % 3]:  # rotate the order
            wall, cpu = [], []
            for n in (1, 1 + steps):
                start, start_cpu = time.perf_counter(), time.process_time()
                unlearn(*prepared[config], config, n, device)
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            runs["wall"][config].append((wall[1] - wall[0]) / steps)
            runs["cpu"][config].append((cpu[1] - cpu[0]) / steps)
    return {
        clock: {config: statistics.median(values) for config, values in per_config.items()}
        for clock, per_config in runs.items()
    } | {"runs": runs}


def measure(shape: str, steps: int, memory_steps: int, repeats: int) -> dict:
    memory = {config: measure_memory(shape, config, memory_steps) for config in CONFIGS}
    seconds = step_seconds(shape, steps, repeats)
    ratios = {
        f"{config}_vs_full": {
            "peak_memory": memory[config]["peak_mb"] / memory["full"]["peak_mb"],
            "peak_memory_default_malloc": memory[config]["peak_mb_default_malloc"]
            / memory["full"]["peak_mb_default_malloc"],
            "optimizer_state": memory[config]["optimizer_state_mb"]
            / memory["full"]["optimizer_state_mb"],
            "step_time": seconds["wall"][config] / seconds["wall"]["full"],
            "step_cpu_time": seconds["cpu"][config] / seconds["cpu"]["full"],
        }
        for config in ("dense", "compact")
    }
    return {"memory": memory, "step_seconds": seconds, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); on shared "
        "cores 1 avoids threads waiting for each other at every op while the other is descheduled",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        shape, config, steps = args.child
        print(json.dumps(peak_bytes(shape, config, int(steps))))
        return
    results = {
        "default": measure("default", steps=20, memory_steps=3, repeats=args.repeats),
        "gpt2_small_shape": measure(
            "gpt2_small_shape", steps=3, memory_steps=2, repeats=args.repeats
        ),
        "sparsity": SPARSITY,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
