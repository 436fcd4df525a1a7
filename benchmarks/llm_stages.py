"""What each stage of ``--env=smollm2_people`` costs, from small measured pieces, in float32
and bf16 in the same run; and batched greedy decoding against one batch per prompt length.

The whole environment takes about 100 minutes on 2 cores (benchmarks/llm_stage_costs.py runs
it); this times one unit of each stage's work on SmolLM2-135M and the people of
conf/smollm2_people's data (a training step of 8 rows, the mean of 3; the mask gradients of 8
rows; the evaluation of 16 rows of a split: every per-sample metric, greedy answers too), then
multiplies by the configuration's counts (``COUNTS``) to estimate each stage. Unlearning is
estimated as a training step per unlearning step (a forget and a retain batch of 4) plus the
stop check's scoring every 2 steps; the data preparation's world-facts check and the Kedro
and MLflow overhead are not counted. Usage::

    python benchmarks/llm_stages.py [--smollm2-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bf16 import smollm2
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.evaluation import metrics
from mape_unlearn.core.evaluation.protocol import evaluate_split
from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.training import train_on_answers

CPU = torch.device("cpu")
# conf/smollm2_people: 16 people x 8 questions; 14 trained on (112 rows), 3 forgotten (24),
# 11 retained (88), 2 held out (16); world facts known to the base model make 163 evaluated
# rows a model; 7 models evaluated (original, retrain, the mask and 4 baselines); the steps
# each method took in docs/performance.md (10 + 6 + 24 + 8 + 24)
COUNTS = {
    "train_steps": 5 * (112 // 8) + 5 * (88 // 8),
    "importance_rows": 24 + 64,
    "unlearn_steps": 72,
    "stop_check_rows": 36 * (24 + 16),
    "evaluated_rows": 7 * 163,
    "relearn_steps": 7 * 3,  # 1 epoch over half the forget people in batches of 4, per model
}


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def units(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, setting: str
) -> dict[str, float]:
    """Seconds of one unit of each stage's work under ``autocast=setting``."""
    qa = generate_people_qa(16, seed=0)
    rows = encode_frame(tokenizer, qa.iloc[:8])
    student = copy.deepcopy(model)

    def train(epochs: int = 3) -> None:  # 3 steps a call: the optimizer's setup shared
        train_on_answers(student, rows, epochs, 1e-7, 8, 0.0, 0.0, 0, CPU, autocast=setting)

    def importance() -> None:
        per_sample_mask_gradients(model, rows, 8, CPU, autocast=setting)

    def evaluate() -> None:
        with precision.autocast(CPU, setting, model):
            evaluate_split(model, tokenizer, qa.iloc[8:24], "forget", 16, CPU)

    train(epochs=1)  # warm-up
    return {
        "train_step": timed(train) / 3,
        "importance_row": timed(importance) / 8,
        "evaluated_row": timed(evaluate) / 16,
    }


def stage_minutes(unit: dict[str, float]) -> dict[str, float]:
    """Each stage's estimated minutes from the seconds of its units and ``COUNTS``."""
    score_row = unit["evaluated_row"] / 8  # one scoring pass of the evaluation's 8
    minutes = {
        "train": COUNTS["train_steps"] * unit["train_step"],
        "importance": COUNTS["importance_rows"] * unit["importance_row"],
        "unlearn": COUNTS["unlearn_steps"] * unit["train_step"]
        + COUNTS["stop_check_rows"] * score_row,
        "evaluate": COUNTS["evaluated_rows"] * unit["evaluated_row"]
        + COUNTS["relearn_steps"] * unit["train_step"] / 2,
    }
    minutes = {stage: seconds / 60 for stage, seconds in minutes.items()}
    return {**minutes, "total": sum(minutes.values())}


def decoding(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
    """Greedy answers of 32 questions in batches of 16: batched over prompt lengths against
    one batch per prompt length (the decoding before), float32, and the distinct lengths."""
    data = encode_frame(tokenizer, generate_people_qa(16, seed=0).iloc[::4])
    lengths = data.prompt_lengths()

    def by_length() -> None:
        for length in lengths.unique().tolist():
            rows = torch.nonzero(lengths == length).flatten()
            for start in range(0, len(rows), 16):
                group = data.select(rows[start : start + 16])
                budget = int(group.labels.ne(-100).sum(dim=1).max())
                prompt = group.input_ids[:, :length]
                metrics._greedy(model, prompt, torch.ones_like(prompt), budget)

    with torch.no_grad():
        per_length = timed(by_length)
    batched = timed(lambda: metrics.greedy_answers(model, data, 16, CPU))
    return {
        "distinct_prompt_lengths": len(lengths.unique()),
        "seconds_one_batch_per_length": per_length,
        "seconds_batched": batched,
        "speed_up": per_length / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2-dir", help="a save_pretrained copy of SmolLM2 (faster)")
    args = parser.parse_args()
    model, tokenizer = smollm2(args.smollm2_dir)
    model.eval()
    result: dict[str, object] = {
        "threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0],
        "counts": COUNTS,
        "decoding": decoding(model, tokenizer),
    }
    for setting in ("off", "bf16"):
        unit = units(model, tokenizer, setting)
        result[setting] = {"unit_seconds": unit, "estimated_minutes": stage_minutes(unit)}
    result["bf16_speed_up"] = (
        result["off"]["estimated_minutes"]["total"] / result["bf16"]["estimated_minutes"]["total"]
    )
    result["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    Path(__file__).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
