"""bf16 autocast: when it applies, and that bf16 and float32 agree on a small model's metrics.

Tolerance (stated in docs/performance.md): per-sample mean answer NLL within 0.01 nats + 2 %,
the same token accuracy, exact matches and greedy answers on a model that has learnt its
answers (bf16 keeps 8 bits of mantissa, so a logit moves by about 0.4 % of its size).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from mape_unlearn.core.evaluation.answer_scores import answer_token_scores
from mape_unlearn.core.evaluation.metrics import greedy_answers, teacher_forced_stats
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.training import train_on_answers
from tests.conftest import random_batch, tiny_model

CPU = torch.device("cpu")


def _trained(family: str, autocast: str = "off") -> tuple[torch.nn.Module, list[float]]:
    data = random_batch(12, width=16, seed=3)
    return train_on_answers(
        tiny_model(family), data, 30, 1e-2, 4, 0.0, 0.0, 0, CPU, autocast=autocast
    )


def test_auto_is_bf16_only_with_bf16_units_and_a_large_model(monkeypatch):
    model = tiny_model("gpt2")
    assert not precision.uses_bf16(CPU, "off", model)
    assert precision.uses_bf16(CPU, "bf16", model)
    monkeypatch.setattr(precision, "has_bf16_units", lambda device: True)
    assert not precision.uses_bf16(CPU, "auto", model)  # too small to gain
    monkeypatch.setattr(precision, "AUTO_MIN_PARAMETERS", 1)
    assert precision.uses_bf16(CPU, "auto", model)
    monkeypatch.setattr(precision, "has_bf16_units", lambda device: False)
    assert not precision.uses_bf16(CPU, "auto", model)
    with pytest.raises(ValueError, match="autocast=True is not allowed.*'auto', 'bf16', 'off'"):
        precision.uses_bf16(CPU, True, model)  # the former boolean setting


def test_the_context_is_bf16_autocast_on_the_device_or_nothing():
    model = tiny_model("gpt2")
    context = precision.autocast(CPU, "bf16", model)
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    assert not isinstance(precision.autocast(CPU, "off", model), torch.autocast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU-only build warns that CUDA is unavailable
        cuda = precision.autocast(torch.device("cuda"), "bf16", model)
    assert isinstance(cuda, torch.autocast) and cuda.device == "cuda"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_bf16_and_float32_agree_on_a_small_models_metrics(family):
    model, _ = _trained(family)
    data = random_batch(12, width=16, seed=3)
    results = {}
    for setting in ("off", "bf16"):
        with precision.autocast(CPU, setting, model):
            scores = answer_token_scores(model, data, 5, CPU)
            results[setting] = (
                torch.stack([-row["logprob"].mean() for row in scores]),
                teacher_forced_stats(model, data, 5, CPU),
                greedy_answers(model, data, 5, CPU),
            )
    (nll, stats, greedy), (nll_bf16, stats_bf16, greedy_bf16) = results["off"], results["bf16"]
    assert not torch.equal(nll, nll_bf16)  # bf16 did run
    torch.testing.assert_close(nll_bf16, nll, atol=0.01, rtol=0.02)
    assert stats["exact_match"] > 0.4  # learnt: the comparison is about answers it gives
    for name in ("answer_token_accuracy", "exact_match", "fact_accuracy", "fact_exact_match"):
        assert stats_bf16[name] == stats[name], name
    assert greedy_bf16 == greedy


def test_bf16_training_keeps_float32_weights():
    """The master weights stay float32 and the loss curve follows float32's closely, though
    not bit for bit (the forward did run in bf16)."""
    model, history = _trained("llama")
    model_bf16, history_bf16 = _trained("llama", autocast="bf16")
    assert all(p.dtype == torch.float32 for p in model_bf16.parameters())
    assert history_bf16 != history
    torch.testing.assert_close(
        torch.tensor(history_bf16), torch.tensor(history), atol=0.02, rtol=0.1
    )


def test_bf16_unlearning_keeps_float32_weights_and_follows_float32():
    """``unlearn.autocast``: the rule's forwards in bf16, the compact deltas and Adam in float32;
    the step losses follow float32's closely, not bit for bit."""
    from mape_unlearn.core.method.architectures import module_weight_masks
    from mape_unlearn.core.method.unlearning import masked_unlearn
    from tests.core.test_unlearning import _selection, _settings

    model = tiny_model("llama")
    masks = module_weight_masks(model, *_selection(model))
    runs = {}
    for setting in ("off", "bf16"):
        settings = _settings(max_steps=6, autocast=setting)
        runs[setting] = masked_unlearn(
            model, random_batch(6, seed=1), random_batch(8, seed=2), masks, settings, None, CPU
        )
    unlearned, trace = runs["bf16"]
    assert all(p.dtype == torch.float32 for p in unlearned.parameters())
    losses = {k: torch.tensor([e["forget_loss"] for e in t[1:]]) for k, (_, t) in runs.items()}
    assert not torch.equal(losses["bf16"], losses["off"])
    torch.testing.assert_close(losses["bf16"], losses["off"], atol=0.05, rtol=0.02)
