import copy
from dataclasses import replace

import pytest
import torch
from pydantic import ValidationError
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.architectures import layout_of, module_weight_masks
from mape_unlearn.core.method.compact import compact_slices
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.method.stepper import diagonal_retain_fisher
from mape_unlearn.core.method.stopping import matched_forgetting
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.method.unlearning import masked_unlearn, optimizer_state_bytes
from tests.conftest import random_batch

CPU = torch.device("cpu")


def _settings(**changes) -> UnlearnSettings:
    values = dict(
        rule="gd",
        lr=1e-2,
        max_steps=5,
        alpha=1.0,
        beta=0.1,
        damping=1.0,
        kl_weight=0.0,
        batch_size=4,
        eval_every=2,
        probe_retain_samples=4,
        stop_metric="answer_token_accuracy",
        forget_tokens="answer",
        seed=0,
    )
    return UnlearnSettings(**{**values, **changes})


def _selection(model):
    layout = layout_of(model)
    heads = torch.zeros(layout.n_layers, layout.n_heads, dtype=torch.bool)
    filters = torch.zeros(layout.n_layers, layout.n_filters, dtype=torch.bool)
    heads[1, 2] = True
    filters[0, [3, 7]] = True
    return heads, filters


def _unlearn(model, masks, rule="gd", steps=5, compact=True, **changes):
    return masked_unlearn(
        model,
        random_batch(6, seed=1),
        random_batch(8, seed=2),
        masks,
        _settings(rule=rule, max_steps=steps, **changes),
        target_forget_accuracy=None,
        device=CPU,
        compact=compact,
    )


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "dense"])
@pytest.mark.parametrize(
    "rule, changes", [("gd", {}), ("so", {}), ("npo", {}), ("gd", {"kl_weight": 1.0})]
)
def test_only_selected_slices_change_and_frozen_weights_are_bit_identical(
    model, rule, changes, compact
):
    heads, filters = _selection(model)
    masks = module_weight_masks(model, heads, filters)
    unlearned, trace = _unlearn(model, masks, rule=rule, compact=compact, **changes)
    assert [e["step"] for e in trace] == [0, 1, 2, 3, 4, 5]
    # step 0 (the model as given), checkpoints every 2 steps and the end carry both sides
    assert [e["step"] for e in trace if "retain_accuracy" in e] == [0, 2, 4, 5]
    before = dict(model.named_parameters())
    changed_any = False
    for name, after in unlearned.named_parameters():
        mask = masks.get(name, torch.zeros_like(after, dtype=torch.bool))
        assert torch.equal(after[~mask], before[name][~mask]), name
        changed_any |= bool((after[mask] != before[name][mask]).any())
    assert changed_any
    # the caller's model is untouched
    assert all(p.requires_grad for p in model.parameters())


def test_head_slices_follow_the_family_layout(model):
    heads, filters = _selection(model)
    masks = module_weight_masks(model, heads, torch.zeros_like(filters))
    layout = layout_of(model)
    per_head = layout.head_dim * model.config.hidden_size
    # q, o (and k, v when not grouped) get one head's slice each; grouped K/V get one KV head's
    owned = sum(int(m.sum()) for name, m in masks.items() if name.endswith("weight"))
    if model.config.model_type == "gpt2":
        assert owned == 4 * per_head  # q, k, v columns of c_attn + rows of c_proj
        assert int(masks["transformer.h.1.attn.c_attn.bias"].sum()) == 3 * layout.head_dim
    else:
        assert owned == 4 * per_head  # q rows, o columns, and the K and V rows of its group
        k_mask = masks["model.layers.1.self_attn.k_proj.weight"]
        assert k_mask.any(dim=1).nonzero().flatten().tolist() == list(range(8, 16))  # group 1
    assert all(".1." in name for name in masks)


def _first_step(model, masks, rule: str, alpha: float):
    """A one-step run (dense path, batches of 8: the whole forget and retain sets), the
    gradients the optimiser stepped along, by parameter name, and the unlearned model."""
    stepped = {}

    def record(optimizer, _args, _kwargs):
        for group in optimizer.param_groups:
            stepped.update({id(p): p.grad.clone() for p in group["params"]})

    handle = register_optimizer_step_pre_hook(record)
    try:
        unlearned, trace = _unlearn(
            model, masks, rule=rule, steps=1, compact=False, alpha=alpha, batch_size=8
        )
    finally:
        handle.remove()
    params = dict(unlearned.named_parameters())
    assert {id(params[n]) for n in masks} == set(stepped)  # every selected tensor, nothing else
    return {n: stepped[id(params[n])] for n in masks}, unlearned, trace


def test_gradient_difference_steps_along_minus_forget_plus_alpha_retain_gradient(model):
    """``gd``'s step follows ``-grad L(f) + alpha grad L(r)``, ``ga``'s ``-grad L(f)`` whatever
    alpha: the two differ by exactly alpha times the retain gradient, computed here by hand."""
    heads, filters = _selection(model)
    masks = module_weight_masks(model, heads | True, filters | True)
    forget, retain = random_batch(6, seed=1), random_batch(8, seed=2)
    params = dict(model.named_parameters())
    selected = [params[n] for n in masks]
    forget_grad = torch.autograd.grad(mean_answer_nll(model, forget), selected)
    retain_grad = torch.autograd.grad(mean_answer_nll(model, retain), selected)
    retain_norm = torch.cat([g.flatten() for g in retain_grad]).norm()
    forget_norm = torch.cat([g.flatten() for g in forget_grad]).norm()
    assert retain_norm > 0.1 * forget_norm  # the retain term is no rounding error

    ga, _, _ = _first_step(model, masks, "ga", alpha=0.5)
    gd, unlearned, trace = _first_step(model, masks, "gd", alpha=0.5)
    for name, g_f, g_r in zip(masks, forget_grad, retain_grad, strict=True):
        torch.testing.assert_close(ga[name], -g_f, rtol=1e-4, atol=1e-7, msg=name)
        torch.testing.assert_close(gd[name], -g_f + 0.5 * g_r, rtol=1e-4, atol=1e-7, msg=name)
        # Adam's first step, bias-corrected: lr * g / (|g| + eps) against the gradient
        expected = params[name] - 1e-2 * gd[name] / (gd[name].abs() + 1e-8)
        torch.testing.assert_close(unlearned.get_parameter(name), expected.detach(), msg=name)
    # step 1 records both losses at the weights as given
    with torch.no_grad():
        assert trace[1]["forget_loss"] == pytest.approx(mean_answer_nll(model, forget).item())
        assert trace[1]["retain_loss"] == pytest.approx(mean_answer_nll(model, retain).item())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "rule",
            "xx",
            "Input should be 'ga', 'gd', 'npo', 'so', 'bounded', 'match' or 'sharp_minmax'",
        ),
        ("lr", -1.0, "Input should be greater than 0"),
        ("lr", float("nan"), "Input should be greater than 0"),
        ("max_steps", 0, "Input should be greater than 0"),
        ("alpha", -1.0, "Input should be greater than or equal to 0"),
        ("stop_metric", "loss", "Input should be 'answer_token_accuracy'"),
        ("forget_tokens", "all", "Input should be 'fact' or 'answer'"),
    ],
)
def test_bad_settings_are_rejected_with_the_field_and_what_is_allowed(field, value, message):
    with pytest.raises(ValidationError, match=rf"{field}\n  {message}"):
        _settings(**{field: value})


def test_npo_lowers_forget_likelihood_relative_to_the_original(model):
    from mape_unlearn.core.method.losses import answer_nll
    from mape_unlearn.core.method.rules import forget_term

    forget = random_batch(6, seed=1)
    masks = module_weight_masks(model, *(m | True for m in _selection(model)))
    unlearned, trace = masked_unlearn(
        model,
        forget,
        random_batch(8, seed=2),
        masks,
        _settings(rule="npo", max_steps=8, alpha=0.0, batch_size=6, eval_every=4),
        target_forget_accuracy=None,
        device=CPU,
    )
    with torch.no_grad():
        before, _ = answer_nll(model, forget)
        after, _ = answer_nll(unlearned, forget)
    assert (after > before).all()
    # at the reference itself the NPO loss is (2/beta) log 2, its starting value
    loss, _ = forget_term("npo", model, model, forget, beta=0.1)
    assert loss.item() == pytest.approx(20 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_so_takes_a_damped_newton_step_with_the_diagonal_retain_fisher(model):
    """One `so` step: d = grad L_f / (F_r + damping * mean F_r), length lr per weight (RMS)."""
    forget, retain = random_batch(6, seed=1), random_batch(8, seed=2)
    masks = module_weight_masks(model, *_selection(model))
    settings = _settings(rule="so", lr=0.01, max_steps=1, batch_size=8, damping=0.3)
    unlearned, _ = masked_unlearn(model, forget, retain, masks, settings, None, CPU)

    params = dict(model.named_parameters())
    fisher = diagonal_retain_fisher(model, retain, {n: params[n] for n in masks}, 8, CPU)
    damping = 0.3 * torch.cat([fisher[n][masks[n]] for n in masks]).mean()
    model.zero_grad()
    mean_answer_nll(model, forget).backward()
    before, after = dict(model.named_parameters()), dict(unlearned.named_parameters())
    direction = {n: before[n].grad * m / (fisher[n] + damping) for n, m in masks.items()}
    rms = torch.cat([d[masks[n]] for n, d in direction.items()]).pow(2).mean().sqrt()
    for name, d in direction.items():
        expected = before[name] + 0.01 * d / rms
        torch.testing.assert_close(after[name], expected.detach(), rtol=1e-4, atol=1e-5)
    model.zero_grad(set_to_none=True)
    step = torch.cat([(after[n] - before[n])[masks[n]] for n in masks])
    assert step.pow(2).mean().sqrt().item() == pytest.approx(0.01, rel=1e-3)


def test_kl_to_the_original_keeps_retain_outputs_closer(model):
    from mape_unlearn.core.method.rules import retain_kl

    masks = module_weight_masks(model, *(m | True for m in _selection(model)))
    retain = random_batch(8, seed=2)
    plain, _ = _unlearn(model, masks, rule="ga", steps=6, batch_size=8)
    anchored, _ = _unlearn(model, masks, rule="ga", steps=6, batch_size=8, kl_weight=50.0)
    with torch.no_grad():
        assert retain_kl(model, model, retain).item() == pytest.approx(0.0, abs=1e-6)
        assert retain_kl(anchored, model, retain) < retain_kl(plain, model, retain)


def test_matched_forgetting_is_the_first_checkpoint_at_the_target():
    trace = [
        {"step": 1, "forget_loss": 1.0},
        {"step": 2, "forget_accuracy": 0.9, "retain_accuracy": 1.0},
        {"step": 4, "forget_accuracy": 0.5, "retain_accuracy": 0.8},
        {"step": 6, "forget_accuracy": 0.4, "retain_accuracy": 0.7},
    ]
    assert matched_forgetting(trace, 0.6) == {
        "step": 4,
        "forget_accuracy": 0.5,
        "retain_accuracy": 0.8,
        "forget_accuracy_at_stop": 0.4,
    }
    for never in (0.1, None):  # never reached, or no target: NaN, and where it stopped
        matched = matched_forgetting(trace, never)
        assert matched.pop("forget_accuracy_at_stop") == 0.4
        assert all(v != v for v in matched.values())


def test_exact_match_stop_metric_traces_whole_answers(model):
    """With ``exact_match`` the trace follows the share of answers reproduced exactly."""
    from mape_unlearn.core.evaluation.metrics import greedy_answers, reference_answers
    from mape_unlearn.core.runtime.training import train_on_answers

    forget = random_batch(6, seed=1)
    ends = forget.attention_mask.sum(dim=1) - 1
    rows = torch.arange(6)
    forget.input_ids[rows, ends] = forget.labels[rows, ends] = 1  # an EOS no answer contains
    # half-memorise the forget samples so that some, not all, are reproduced exactly
    for epochs in range(2, 40, 2):
        trained, _ = train_on_answers(model, forget, epochs, 1e-2, 6, 0.0, 0.0, 0, CPU)
        stats = teacher_forced_stats(trained, forget, 6, CPU)
        if 0 < stats["exact_match"] < 1:
            break
    assert 0 < stats["exact_match"] < 1
    # teacher-forced exact match is greedy exact match: the same samples are reproduced
    greedy = greedy_answers(trained, forget, 6, CPU)
    same = [g == r for g, r in zip(greedy, reference_answers(forget), strict=True)]
    assert stats["exact_match"] == pytest.approx(sum(same) / len(same))

    masks = module_weight_masks(trained, *_selection(trained))
    _, trace = masked_unlearn(
        trained, forget, random_batch(8, seed=2), masks,
        _settings(max_steps=1, eval_every=1, stop_metric="exact_match"), None, CPU,
    )  # fmt: skip
    assert trace[-1]["forget_accuracy"] == pytest.approx(
        teacher_forced_stats(_, forget, 6, CPU)["exact_match"]
    )


@pytest.mark.parametrize("every_module", [True, False], ids=["dense", "compact"])
def test_non_finite_loss_stops_and_restores_the_last_finite_weights(model, every_module):
    heads, filters = _selection(model)
    if every_module:  # every row: all-ones masks, the dense path
        heads, filters = heads | True, filters | True
    masks = module_weight_masks(model, heads, filters)
    forget = random_batch(6, seed=1)
    unlearned, trace = masked_unlearn(
        model, forget, random_batch(8, seed=2), masks,
        _settings(rule="ga", lr=1e30, max_steps=50, eval_every=50), None, CPU,
    )  # fmt: skip
    assert trace[-1].get("stopped_non_finite") == 1.0
    assert len(trace) < 50
    assert all(torch.isfinite(p).all() for p in unlearned.parameters())
    with torch.no_grad():
        assert torch.isfinite(mean_answer_nll(unlearned, forget))


def _mixed_masks(model):
    """Module masks plus element masks: on a projection and a norm (dense path), on a bias
    (a compact slice apart from its weight's)."""
    masks = module_weight_masks(model, *_selection(model))
    generator = torch.Generator().manual_seed(3)
    for name, param in model.named_parameters():
        if name.endswith(("h.0.mlp.c_proj.weight", "layers.0.mlp.down_proj.weight")):
            masks[name] = torch.rand(param.shape, generator=generator) < 0.1  # salun-like
        if name.endswith(("h.1.ln_2.weight", "layers.1.post_attention_layernorm.weight")):
            masks[name] = torch.ones_like(param, dtype=torch.bool)
        if name.endswith("h.1.attn.c_proj.bias"):
            masks[name] = torch.rand(param.shape, generator=generator) < 0.3
    return masks


def _key_bias(model, name: str) -> slice:
    """GPT-2's key bias: softmax ignores it, so its gradient is exactly 0 and Adam turns the
    rounding noise of either path into steps of size lr (they change no output)."""
    if model.config.model_type == "gpt2" and name.endswith("attn.c_attn.bias"):
        return slice(model.config.n_embd, 2 * model.config.n_embd)
    return slice(0, 0)


@pytest.mark.parametrize("selection", ["modules", "mixed"])
@pytest.mark.parametrize(
    "rule, changes", [("gd", {}), ("so", {}), ("npo", {}), ("ga", {"kl_weight": 1.0})]
)
def test_compact_slices_give_the_dense_masked_result(model, rule, changes, selection):
    masks = module_weight_masks(model, *_selection(model))
    if selection == "mixed":
        masks = _mixed_masks(model)
    compact, compact_trace = _unlearn(model, masks, rule=rule, **changes)
    dense, dense_trace = _unlearn(model, masks, rule=rule, compact=False, **changes)
    assert [e["step"] for e in compact_trace] == [e["step"] for e in dense_trace]
    for entry, expected in zip(compact_trace, dense_trace, strict=True):
        assert entry == pytest.approx(expected, rel=1e-4, abs=1e-5)
    original = dict(model.named_parameters())
    expected = dict(dense.named_parameters())
    for name, after in compact.named_parameters():
        keep = torch.ones_like(after, dtype=torch.bool)
        keep[_key_bias(model, name)] = False
        torch.testing.assert_close(after[keep], expected[name][keep], rtol=1e-4, atol=1e-5)
        frozen = ~masks.get(name, torch.zeros_like(after, dtype=torch.bool))
        assert torch.equal(after[frozen], original[name][frozen]), name
    batch = random_batch(6, seed=4)
    with torch.no_grad():
        logits = compact(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        reference = dense(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-5)
    # the returned model owns its tensors: nothing is shared with the caller's model
    pointers = {p.data_ptr() for p in model.parameters()}
    assert not pointers & {p.data_ptr() for p in compact.parameters()}


def test_module_masks_are_compact_and_element_masks_are_not(model):
    masks = _mixed_masks(model)
    slices = compact_slices(model, masks)
    element = {n for n in masks if n.endswith(("0.mlp.c_proj.weight", "0.mlp.down_proj.weight"))}
    norm = {n for n in masks if "ln_2" in n or "layernorm" in n}
    assert len(element) == len(norm) == 1
    assert set(slices) == set(masks) - element - norm
    for name, piece in slices.items():
        assert piece.numel == int(masks[name].sum())
    axes = {n.rsplit(".", 2)[-2]: s.axis for n, s in slices.items() if n.endswith("weight")}
    if model.config.model_type == "gpt2":  # Conv1D: heads own c_attn's columns of [in, out]
        assert axes == {"c_attn": "out", "c_proj": "in", "c_fc": "out"}
        assert slices["transformer.h.1.attn.c_proj.bias"].axis == "out"  # apart from its weight
    else:
        assert axes == {"q_proj": "out", "k_proj": "out", "v_proj": "out", "o_proj": "in",
                        "gate_proj": "out", "up_proj": "out"}  # fmt: skip
    full = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    assert compact_slices(model, full) == {}  # all ones: the plain dense path


def test_optimizer_state_counts_only_the_compact_slices(model):
    masks = _mixed_masks(model)
    params = dict(model.named_parameters())
    slices = compact_slices(model, masks)
    selected = sum(int(masks[n].sum()) for n in slices)
    whole = sum(params[n].numel() for n in masks if n not in slices)
    assert optimizer_state_bytes(model, masks, "gd") == 3 * 4 * (selected + whole)
    assert optimizer_state_bytes(model, masks, "so") == 2 * 4 * (selected + whole)
    dense = optimizer_state_bytes(model, masks, "gd", compact=False)
    assert dense == 3 * 4 * sum(params[n].numel() for n in masks)


def test_a_tied_embedding_stays_on_the_dense_path():
    from tests.conftest import tiny_model

    model = tiny_model("gpt2")  # lm_head shares the token embedding
    assert model.lm_head.weight is model.transformer.wte.weight
    rows = torch.zeros_like(model.lm_head.weight, dtype=torch.bool)
    rows[:3] = True
    assert compact_slices(model, {"transformer.wte.weight": rows}) == {}


def test_nothing_to_unlearn_when_the_model_is_already_at_the_target(model, caplog):
    """A forget set the model already gets as wrong as the target: step 0 only, a warning,
    and the weights as given."""
    masks = module_weight_masks(model, *(m | True for m in _selection(model)))
    with caplog.at_level("WARNING"):
        unlearned, trace = masked_unlearn(
            model,
            random_batch(6, seed=1),
            random_batch(8, seed=2),
            masks,
            _settings(max_steps=5),
            target_forget_accuracy=1.0,  # any accuracy is at or below it
            device=CPU,
        )
    assert [entry["step"] for entry in trace] == [0]
    assert "nothing to unlearn" in caplog.text
    before = dict(model.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in unlearned.named_parameters())
    assert matched_forgetting(trace, 1.0)["step"] == 0


def test_checks_every_step_once_the_target_is_near():
    """Checkpoints every 4 steps while the target is far; every step from the checkpoint whose
    last drop, twice over, would reach it, and from then on to the end."""
    from mape_unlearn.core.method.stopping import steps_to_next_check

    settings = _settings(eval_every=4)
    trace = [{"step": 0, "forget_accuracy": 1.0}]
    far = {"step": 4, "forget_accuracy": 0.9}  # dropped 0.1: 0.9 - 0.2 is above 0.5
    assert steps_to_next_check(trace, far, 0.5, settings) == 4
    near = {"step": 8, "forget_accuracy": 0.7}  # dropped 0.2: 0.7 - 0.4 is below 0.5
    assert steps_to_next_check([*trace, far], near, 0.5, settings) == 1
    stalled = {"step": 9, "forget_accuracy": 0.7}  # no drop, but already checking every step
    assert steps_to_next_check([*trace, far, near], stalled, 0.5, settings) == 1
    assert steps_to_next_check(trace, far, None, settings) == 4  # no target: the interval


def test_near_the_target_only_forget_is_checked_each_step_and_retain_at_the_stop(model):
    """The stop reads the forget level alone: the per-step checks near the target skip the
    retain probe, which the trace has every eval_every steps and where the run stopped."""
    forget, retain = random_batch(6, seed=1), random_batch(8, seed=2)
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):  # memorise the forget set, so that unlearning has a way down
        optimizer.zero_grad()
        mean_answer_nll(model, forget).backward()
        optimizer.step()
    masks = module_weight_masks(model, *(m | True for m in _selection(model)))
    settings = _settings(lr=3e-3, max_steps=40, eval_every=4, batch_size=6)
    _, free = masked_unlearn(
        model, forget, retain, masks, replace(settings, eval_every=1), None, device=CPU
    )
    level = [e["forget_accuracy"] for e in free]
    # a new low two steps past the every-4-steps grid: reached by the per-step checks only
    stop = next(k for k in range(9, 41) if k % 4 >= 2 and level[k] < min(level[:k]))
    _, trace = masked_unlearn(model, forget, retain, masks, settings, level[stop], device=CPU)
    checked = [e["step"] for e in trace if "forget_accuracy" in e]
    with_retain = [e["step"] for e in trace if "retain_accuracy" in e]
    assert trace[-1]["step"] == stop  # the trajectory is the free run's: checks change nothing
    assert {stop - 1, stop} <= set(checked)  # off the grid: checked step by step
    assert with_retain == [*range(0, stop, 4), stop]
    assert matched_forgetting(trace, level[stop])["retain_accuracy"] == trace[-1]["retain_accuracy"]
