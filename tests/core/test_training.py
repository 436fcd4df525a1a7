"""Training on answer tokens: the embedded-size model stays float32 under ``autocast: auto``."""

from __future__ import annotations

import torch

from mape_unlearn.core.runtime.training import train_on_answers
from tests.conftest import random_batch, tiny_model

CPU = torch.device("cpu")


def _train(autocast: str) -> tuple[torch.nn.Module, list[float]]:
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


def test_auto_leaves_a_small_model_float32_so_training_is_bit_identical():
    """bf16 would slow a model this small (core.runtime.precision), so ``auto`` is ``off``."""
    plain_model, plain_history = _train(autocast="off")
    autocast_model, autocast_history = _train(autocast="auto")
    assert plain_history == autocast_history
    for (name, plain), autocast in zip(
        plain_model.state_dict().items(), autocast_model.state_dict().values(), strict=True
    ):
        assert torch.equal(plain, autocast), name


def test_dropout_is_seeded_so_training_ignores_and_keeps_the_callers_random_state():
    """A model with dropout (a pretrained BERT's 0.1) trains to the same weights whatever the
    global random state was, and the caller's random state is left as it was."""
    results = []
    for draws in (0, 5):
        model = tiny_model("gpt2")
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.5
        torch.rand(draws)  # a different global state before each run
        state = torch.get_rng_state()
        trained, _ = train_on_answers(
            model, random_batch(n=6), 2, 1e-2, 3, 0.0, 0.0, seed=0, device=CPU
        )
        assert torch.equal(torch.get_rng_state(), state)
        results.append(trained.state_dict())
    for name, tensor in results[0].items():
        assert torch.equal(tensor, results[1][name]), name
    # the same run without dropout ends elsewhere: the dropout did act
    plain, _ = train_on_answers(tiny_model("gpt2"), random_batch(n=6), 2, 1e-2, 3, 0.0, 0.0, 0, CPU)
    assert any(not torch.equal(t, plain.state_dict()[n]) for n, t in results[0].items())
