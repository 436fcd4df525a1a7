import pytest
import torch

from mape_unlearn.core.architectures import layout_of, module_parameter_masks
from mape_unlearn.core.unlearning import masked_unlearn
from tests.conftest import random_batch

CPU = torch.device("cpu")


def _selection(model):
    layout = layout_of(model)
    heads = torch.zeros(layout.n_layers, layout.n_heads, dtype=torch.bool)
    filters = torch.zeros(layout.n_layers, layout.n_filters, dtype=torch.bool)
    heads[1, 2] = True
    filters[0, [3, 7]] = True
    return heads, filters


def _unlearn(model, masks, rule="gd", steps=5):
    return masked_unlearn(
        model,
        random_batch(6, seed=1),
        random_batch(8, seed=2),
        masks,
        rule=rule,
        lr=1e-2,
        max_steps=steps,
        alpha=1.0,
        batch_size=4,
        eval_every=2,
        target_forget_accuracy=None,
        seed=0,
        device=CPU,
    )


def test_only_selected_slices_change_and_frozen_weights_are_bit_identical(model):
    heads, filters = _selection(model)
    masks = module_parameter_masks(model, heads, filters)
    unlearned, trace = _unlearn(model, masks)
    assert len(trace) == 5
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
    masks = module_parameter_masks(model, heads, torch.zeros_like(filters))
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


def test_gradient_difference_raises_forget_loss(model):
    heads, filters = _selection(model)
    masks = module_parameter_masks(model, heads | True, filters | True)
    _, trace = _unlearn(model, masks, rule="ga", steps=8)
    assert trace[-1]["forget_loss"] > trace[0]["forget_loss"]


def test_unknown_rule_and_bad_learning_rate_are_rejected(model):
    with pytest.raises(ValueError, match="rule='xx' is not allowed"):
        _unlearn(model, {}, rule="xx")
    with pytest.raises(ValueError, match="lr=-1"):
        masked_unlearn(
            model, random_batch(), random_batch(), {}, "gd", -1.0, 1, 1.0, 2, 1, None, 0, CPU
        )


def test_npo_lowers_forget_likelihood_relative_to_the_original(model):
    from mape_unlearn.core.losses import answer_nll
    from mape_unlearn.core.unlearning import forget_term

    forget = random_batch(6, seed=1)
    masks = module_parameter_masks(model, *(m | True for m in _selection(model)))
    unlearned, trace = masked_unlearn(
        model,
        forget,
        random_batch(8, seed=2),
        masks,
        rule="npo",
        lr=1e-2,
        max_steps=8,
        alpha=0.0,
        batch_size=6,
        eval_every=4,
        target_forget_accuracy=None,
        seed=0,
        device=CPU,
    )
    with torch.no_grad():
        before, _ = answer_nll(model, forget)
        after, _ = answer_nll(unlearned, forget)
    assert (after > before).all()
    # at the reference itself the NPO loss is (2/beta) log 2, its starting value
    loss, _ = forget_term("npo", model, model, forget, beta=0.1)
    assert loss.item() == pytest.approx(20 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)
