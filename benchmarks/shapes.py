"""The model shapes the benchmarks time: the embedded default's architecture, read from
conf/base (so a changed default is what they measure), and a GPT-2-small-shaped one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
