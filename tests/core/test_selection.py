import pytest
import torch

from mape_unlearn.core.method.architectures import layout_of
from mape_unlearn.core.method.losses import answer_nll, mean_answer_nll
from mape_unlearn.core.method.search import budget
from mape_unlearn.core.method.selection import (
    all_parameters,
    diagonal_fisher,
    random_modules,
    saliency_parameters,
    top_k_masks,
)
from tests.conftest import random_batch

CPU = torch.device("cpu")


def test_random_modules_keeps_the_module_budget_and_depends_on_the_seed(model):
    layout = layout_of(model)
    a, b = random_modules(model, 0.75, seed=0), random_modules(model, 0.75, seed=1)
    assert int(a.heads.sum()) == 2  # ceil(0.25 * 2 layers * 4 heads)
    assert int(a.filters.sum()) == 24  # ceil(0.25 * 2 layers * 48 filters)
    assert a.filters.shape == (layout.n_layers, layout.n_filters)
    assert not torch.equal(a.filters, b.filters)


def test_full_selects_every_weight(model):
    masks = all_parameters(model)
    assert sum(int(m.sum()) for m in masks.values()) == model.num_parameters()


@pytest.mark.parametrize("kind", ["salun", "sa"])
def test_saliency_selects_the_top_share_of_weights_by_forget_gradient(model, kind):
    masks = saliency_parameters(model, random_batch(8), kind, 0.9, batch_size=4, device=CPU)
    selected = sum(int(m.sum()) for m in masks.values())
    assert selected == budget(model.num_parameters(), 0.9)  # exactly the budget
    # the selected weights are those the forget loss moves most: their gradient is non-zero
    model.zero_grad()
    mean_answer_nll(model, random_batch(8)).backward()
    for name, p in model.named_parameters():
        if masks[name].any():
            assert p.grad[masks[name]].abs().min() > 0, name
    assert all(p.requires_grad for p in model.parameters())


def _brute_force_fisher(model, data) -> dict[str, torch.Tensor]:
    """``mean_j g_j^2``, each ``g_j`` from one row of the padded batch's loss vector."""
    params = dict(model.named_parameters())
    losses, _ = answer_nll(model, data)
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    for loss in losses:
        grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
        for name, g in zip(params, grads, strict=True):
            fisher[name] += g.square() / len(data)
    return fisher


def test_diagonal_fisher_is_the_mean_of_per_sample_squared_gradients(model):
    data = random_batch(7, seed=3)
    fisher = diagonal_fisher(model, data)
    expected = _brute_force_fisher(model, data)
    assert fisher.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(fisher[name], value, rtol=1e-4, atol=1e-10, msg=name)
    # not the square of a mini-batch mean: that is smaller wherever samples disagree in sign
    model.zero_grad()
    (answer_nll(model, data)[0].sum() / len(data)).backward()
    batch_square = torch.cat([p.grad.flatten() ** 2 for p in model.parameters()])
    assert (batch_square.sum() < 0.9 * sum(f.sum() for f in expected.values())).item()


def test_sa_takes_the_weights_of_largest_per_sample_fisher(model):
    data = random_batch(7, seed=3)
    masks = saliency_parameters(model, data, "sa", 0.8, batch_size=4, device=CPU)
    fisher = torch.cat([f.flatten() for f in _brute_force_fisher(model, data).values()])
    chosen = torch.cat([m.flatten() for m in masks.values()])
    assert int(chosen.sum()) == budget(len(fisher), 0.8)
    assert fisher[chosen].min() >= fisher[~chosen].max() * (1 - 1e-4)


def test_top_k_masks_break_ties_in_order_and_never_exceed_k():
    scores = {"a": torch.tensor([3.0, 1.0, 1.0, 0.0]), "b": torch.tensor([[1.0, 0.0], [2.0, 0.0]])}
    # 3 and 2, then two of the three tied 1s: the earliest, a[1] and a[2]
    masks = top_k_masks(scores, 4)
    assert masks["a"].tolist() == [True, True, True, False]
    assert masks["b"].tolist() == [[False, False], [True, False]]
    # more than the non-zero scores: all five, then the two earliest zeros, not all eight
    masks = top_k_masks(scores, 7)
    assert masks["a"].tolist() == [True, True, True, True]
    assert masks["b"].tolist() == [[True, True], [True, False]]
    assert sum(int(m.sum()) for m in top_k_masks(scores, 0).values()) == 0


@pytest.mark.parametrize("k", [1, 17, 150, 300])
def test_top_k_masks_without_ties_are_the_k_largest(k):
    generator = torch.Generator().manual_seed(k)
    scores = {
        "w": torch.randn(10, 20, generator=generator),
        "b": torch.rand(100, generator=generator),
    }
    masks = top_k_masks(scores, k)
    flat = torch.cat([s.flatten() for s in scores.values()])
    chosen = torch.cat([m.flatten() for m in masks.values()])
    assert masks["w"].shape == (10, 20) and masks["b"].shape == (100,)
    assert int(chosen.sum()) == k
    assert torch.equal(torch.nonzero(chosen).flatten(), torch.topk(flat, k).indices.sort().values)


@pytest.mark.parametrize("k", [-1, 5])
def test_top_k_masks_reject_a_k_outside_the_weights(k):
    with pytest.raises(ValueError, match=f"k={k} is not allowed"):
        top_k_masks({"w": torch.ones(4)}, k)
