"""Sharpness-aware unlearning: SAM as the optimiser of any rule, and the Sharp MinMax rule
(docs/method.md §4), checked against hand computations on tiny models."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from pydantic import ValidationError
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.method.methods import method_settings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.unlearning import masked_unlearn
from tests.conftest import random_batch, tiny_model
from tests.core.test_unlearning import _key_bias, _mixed_masks, _selection, _settings

CPU = torch.device("cpu")
FORGET, RETAIN = random_batch(6, seed=1), random_batch(8, seed=2)


def _stepped(model, rule: str, masks, compact: bool = False, **changes):
    """A one-step run (batches of 8: the whole forget and retain sets): the gradients each
    optimiser step took, in order, by id of the tensor; the unlearned model and the trace."""
    stepped = []

    def record(optimizer, _args, _kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        stepped.append({id(p): p.grad.clone() for p in params})

    handle = register_optimizer_step_pre_hook(record)
    try:
        unlearned, trace = masked_unlearn(
            model, FORGET, RETAIN, masks,
            _settings(rule=rule, max_steps=1, batch_size=8, **changes), None, CPU,
            compact=compact,
        )  # fmt: skip
    finally:
        handle.remove()
    return stepped, unlearned, trace


def _gradient(model, params: dict, loss_of) -> dict[str, torch.Tensor]:
    loss = loss_of(model)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


def _moved(model, step: dict[str, torch.Tensor]):
    """A copy of ``model`` with ``step`` added to its parameters."""
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for name, delta in step.items():
            moved.get_parameter(name).add_(delta)
    return moved


def test_one_sam_step_is_adam_at_the_weights_with_the_gradient_at_the_perturbation(model):
    """``gd`` with ``optimizer: sam``: the gradient ``g`` masked to the selected slices, the
    weights moved by ``rho g / ||g||`` (the norm over the selected entries), the gradient taken
    there, and Adam's first step with it applied at the weights as given."""
    masks = module_weight_masks(model, *_selection(model))
    params = {n: p for n, p in model.named_parameters() if n in masks}

    def loss(m):
        return -mean_answer_nll(m, FORGET) + 0.5 * mean_answer_nll(m, RETAIN)

    g = {n: grad * masks[n] for n, grad in _gradient(model, params, loss).items()}
    norm = torch.cat([grad.flatten() for grad in g.values()]).norm()
    perturbed = _moved(model, {n: 0.5 * grad / norm for n, grad in g.items()})
    moved_params = {n: perturbed.get_parameter(n) for n in masks}
    g_p = {n: grad * masks[n] for n, grad in _gradient(perturbed, moved_params, loss).items()}
    change = torch.cat([(g_p[n] - g[n]).flatten() for n in g]).norm()
    assert change > 0.05 * norm  # the perturbation changes the gradient: the test can tell

    stepped, unlearned, trace = _stepped(model, "gd", masks, alpha=0.5, optimizer="sam", rho=0.5)
    (taken,) = stepped  # one optimiser step
    after = dict(unlearned.named_parameters())
    for name in masks:
        gradient = taken[id(after[name])]
        torch.testing.assert_close(gradient, g_p[name], rtol=1e-4, atol=1e-7)
        # Adam's first step, bias-corrected, lr * g / (|g| + eps), with that gradient and from
        # the weights as given (g itself: Adam makes a near-zero entry's rounding a whole step)
        expected = params[name] - 1e-2 * gradient / (gradient.abs() + 1e-8)
        torch.testing.assert_close(after[name], expected.detach(), msg=name)
        selected = masks[name]
        assert torch.equal(after[name][~selected], params[name][~selected]), name
    # the trace records the losses at the weights as given, not at the perturbation
    with torch.no_grad():
        assert trace[1]["forget_loss"] == pytest.approx(mean_answer_nll(model, FORGET).item())


@pytest.mark.parametrize("rule", ["gd", "npo"])
def test_sam_compact_and_dense_paths_agree_and_frozen_weights_stay_bit_identical(rule):
    model = tiny_model("llama")
    masks = _mixed_masks(model)
    runs = [
        masked_unlearn(
            model,
            FORGET,
            RETAIN,
            masks,
            _settings(rule=rule, optimizer="sam", rho=0.2),
            None,
            CPU,
            compact=compact,
        )  # fmt: skip
        for compact in (True, False)
    ]
    (compact, compact_trace), (dense, dense_trace) = runs
    for entry, expected in zip(compact_trace, dense_trace, strict=True):
        assert entry == pytest.approx(expected, rel=1e-4, abs=1e-5)
    original, expected = dict(model.named_parameters()), dict(dense.named_parameters())
    changed = False
    for name, after in compact.named_parameters():
        keep = torch.ones_like(after, dtype=torch.bool)
        keep[_key_bias(model, name)] = False
        torch.testing.assert_close(after[keep], expected[name][keep], rtol=1e-4, atol=1e-5)
        selected = masks.get(name, torch.zeros_like(after, dtype=torch.bool))
        for run in (after, expected[name]):
            assert torch.equal(run[~selected], original[name][~selected]), name
        changed |= bool((after[selected] != original[name][selected]).any())
    assert changed


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "dense"])
def test_a_non_finite_loss_under_sam_restores_the_last_finite_weights(compact):
    model = tiny_model("gpt2")
    masks = module_weight_masks(model, *_selection(model))
    unlearned, trace = masked_unlearn(
        model, FORGET, RETAIN, masks,
        _settings(rule="ga", optimizer="sam", lr=1e30, max_steps=50, eval_every=50), None, CPU,
        compact=compact,
    )  # fmt: skip
    assert trace[-1].get("stopped_non_finite") == 1.0 and len(trace) < 50
    assert all(torch.isfinite(p).all() for p in unlearned.parameters())
    with torch.no_grad():
        assert torch.isfinite(mean_answer_nll(unlearned, FORGET))


def test_sharp_minmax_forget_step_raises_the_forget_loss_on_the_salient_half(model):
    """``minmax_alpha: 0`` leaves the forget side alone: its part is the half of the selection
    with the largest ``|grad L(f)|``, its gradient ``g - lam (g_p - g)`` of ``-L(f)``, and the
    step it takes raises the forget NLL."""
    masks = module_weight_masks(model, *_selection(model))
    params = {n: p for n, p in model.named_parameters() if n in masks}
    saliency = _gradient(model, params, lambda m: mean_answer_nll(m, FORGET))
    scores = torch.cat([(g.abs() * masks[n]).flatten() for n, g in saliency.items()])
    half = (int(sum(int(m.sum()) for m in masks.values())) + 1) // 2
    threshold = scores.topk(half).values[-1]
    part = {n: masks[n] & (g.abs() >= threshold) for n, g in saliency.items()}

    def loss(m):
        return -mean_answer_nll(m, FORGET)

    g = {n: grad * part[n] for n, grad in _gradient(model, params, loss).items()}
    norm = torch.cat([grad.flatten() for grad in g.values()]).norm()
    perturbed = _moved(model, {n: 0.05 * grad / norm for n, grad in g.items()})
    moved = {n: perturbed.get_parameter(n) for n in masks}
    g_p = {n: grad * part[n] for n, grad in _gradient(perturbed, moved, loss).items()}

    changes = dict(minmax_alpha=0.0, minmax_lambda=0.5, rho=0.05, lr=1e-3)
    stepped, unlearned, trace = _stepped(model, "sharp_minmax", masks, **changes)
    retain_step, forget_step = stepped  # one step: the retain side, then the forget side
    after = dict(unlearned.named_parameters())
    for name in masks:
        assert not retain_step[id(after[name])].any()  # minmax_alpha 0: no retain gradient
        expected = g[name] - 0.5 * (g_p[name] - g[name])
        torch.testing.assert_close(forget_step[id(after[name])], expected, rtol=1e-4, atol=1e-7)
        outside = ~part[name]
        assert torch.equal(after[name][outside], params[name][outside]), name
    with torch.no_grad():
        before, now = mean_answer_nll(model, FORGET), mean_answer_nll(unlearned, FORGET)
    assert now > before
    assert trace[1]["forget_loss"] == pytest.approx(before.item())


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "dense"])
def test_sharp_minmax_retain_step_lowers_the_retain_loss_off_the_forget_half(compact):
    """``minmax_alpha: 1`` leaves the retain side alone: it lowers the retain NLL and moves at
    most the other half of the selection."""
    model = tiny_model("gpt2")
    masks = module_weight_masks(model, *_selection(model))
    _, unlearned, _ = _stepped(model, "sharp_minmax", masks, compact, minmax_alpha=1.0, lr=1e-3)
    with torch.no_grad():
        assert mean_answer_nll(unlearned, RETAIN) < mean_answer_nll(model, RETAIN)
    before = dict(model.named_parameters())
    moved = sum(
        int((after != before[name])[masks[name]].sum())
        for name, after in unlearned.named_parameters()
        if name in masks
    )
    assert 0 < moved <= sum(int(m.sum()) for m in masks.values()) // 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optimizer", "sgd", "Input should be 'adam' or 'sam'"),
        ("rho", 0.0, "Input should be greater than 0"),
        ("rho", float("nan"), "Input should be greater than 0"),
        ("minmax_alpha", 1.5, "Input should be less than or equal to 1"),
        ("minmax_lambda", -1.0, "Input should be greater than or equal to 0"),
    ],
)
def test_bad_sam_settings_are_rejected_with_the_field_and_what_is_allowed(field, value, message):
    given = re.escape(repr(value))
    with pytest.raises(ValidationError, match=rf"{field}\n  {message} \[.*input_value={given}"):
        _settings(**{field: value})


def test_sharp_minmax_with_a_kl_term_is_rejected_with_both_values():
    with pytest.raises(ValidationError, match=r"kl_weight=1.0 is not allowed with .*'sharp_minm"):
        _settings(rule="sharp_minmax", kl_weight=1.0)


def test_a_baseline_changes_the_settings_it_names_and_bad_ones_are_named():
    sam = Selector(kind="salun", unlearn={"optimizer": "sam", "rho": 0.05})
    settings = method_settings(sam, _settings())
    assert (settings.optimizer, settings.rho, settings.rule) == ("sam", 0.05, "gd")
    with pytest.raises(ValidationError, match=r"unlearn.rho=-1.0 is not allowed: Input should be"):
        Selector(kind="salun", unlearn={"rho": -1.0})
    with pytest.raises(ValidationError, match=r"unlearn.optimiser='sam' is not allowed: .*'rho'"):
        Selector(kind="salun", unlearn={"optimiser": "sam"})
    minmax = Selector(kind="full", unlearn={"rule": "sharp_minmax"})
    with pytest.raises(ValidationError, match=r"kl_weight=1.0 is not allowed"):
        method_settings(minmax, _settings(kl_weight=1.0))  # validated with the stage's settings
