"""Training on answer tokens: bf16 autocast is CUDA-only, so CPU training is unchanged by it."""

from __future__ import annotations

import torch

from mape_unlearn.core.training import train_on_answers
from tests.conftest import random_batch, tiny_model

CPU = torch.device("cpu")


def _train(autocast: bool) -> tuple[torch.nn.Module, list[float]]:
    return train_on_answers(
        tiny_model("gpt2"),
        random_batch(n=6),
        epochs=2,
        lr=1e-2,
        batch_size=3,
        warmup_fraction=0.0,
        weight_decay=0.0,
        seed=0,
        device=CPU,
        autocast=autocast,
    )


def test_autocast_is_ignored_on_cpu_so_training_is_bit_identical():
    plain_model, plain_history = _train(autocast=False)
    autocast_model, autocast_history = _train(autocast=True)
    assert plain_history == autocast_history
    for (name, plain), autocast in zip(
        plain_model.state_dict().items(), autocast_model.state_dict().values(), strict=True
    ):
        assert torch.equal(plain, autocast), name
