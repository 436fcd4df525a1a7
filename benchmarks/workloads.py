"""What the benchmarks time: model shapes (the embedded default's architecture, read from
conf/base so a changed default is what they measure, and a GPT-2-small-shaped one) and random
question-answer batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from mape_unlearn.core.data.encoding import IGNORE, QABatch

TRAIN_PARAMETERS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_train.yml"


def default_architecture() -> dict[str, Any]:
    """``train.architecture`` of conf/base: the GPT-2 config of the embedded default."""
    return yaml.safe_load(TRAIN_PARAMETERS.read_text())["train"]["architecture"]


SHAPES: dict[str, dict[str, Any]] = {
    "default": default_architecture(),
    "gpt2_small_shape": {
        "n_layer": 12,
        "n_head": 12,
        "n_embd": 768,
        "n_inner": 3072,
        "n_positions": 64,
    },
}


def random_batch(n: int, seed: int = 0, width: int = 24, vocab: int = 600) -> QABatch:
    """``n`` rows of random tokens whose second half is the answer, every answer token a fact."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (n, width), generator=generator)
    labels = input_ids.clone()
    labels[:, : width // 2] = IGNORE
    return QABatch(input_ids, torch.ones_like(input_ids), labels, labels.clone())
