import pytest
import torch

from mape_unlearn.core.method.architectures import layout_of
from mape_unlearn.core.method.losses import answer_nll, mean_answer_nll
from mape_unlearn.core.method.search import budget
from mape_unlearn.core.method.selection import (
    all_parameters,
    diagonal_fisher,
    forget_gradient,
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


def _k_largest_by_sort(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """The reference for :func:`top_k_masks`: sort every weight by (score descending, position
    in tensor order then flat order) in plain Python and take the first ``k``."""
    flat = torch.cat([s.flatten() for s in scores.values()]).tolist()
    order = sorted(range(len(flat)), key=lambda i: (-flat[i], i))
    chosen = torch.zeros(len(flat), dtype=torch.bool)
    chosen[order[:k]] = True
    parts = chosen.split([s.numel() for s in scores.values()])
    return {name: part.view(s.shape) for (name, s), part in zip(scores.items(), parts, strict=True)}


@pytest.mark.parametrize("kind", ["salun", "sa"])
def test_saliency_selects_exactly_the_k_largest_scores_ties_to_the_earliest(model, kind):
    """``salun``/``sa`` masks are the first ``budget`` weights of all scores sorted by hand,
    at a budget inside the non-zero scores and at one that reaches into the tied zeros (unused
    embeddings, positions past the batch), which go to the earliest weights."""
    data = random_batch(8)
    # the scores as saliency_parameters computes them (each checked on its own below and in
    # test_diagonal_fisher_is_the_mean_of_per_sample_squared_gradients)
    if kind == "salun":
        scores = {n: g.abs() for n, g in forget_gradient(model, data, batch_size=4).items()}
    else:
        scores = diagonal_fisher(model, data)
    assert list(scores) == [n for n, _ in model.named_parameters()]
    flat = torch.cat([s.flatten() for s in scores.values()])
    nonzero = int((flat > 0).sum())
    assert budget(flat.numel(), 0.9) < nonzero < flat.numel() - 5  # zeros: ties to break
    for k in (budget(flat.numel(), 0.9), nonzero + 5):
        sparsity = 1 - k / flat.numel()
        assert budget(flat.numel(), sparsity) == k
        masks = saliency_parameters(model, data, kind, sparsity, batch_size=4, device=CPU)
        expected = _k_largest_by_sort(scores, k)
        assert masks.keys() == expected.keys()
        for name, mask in masks.items():
            assert torch.equal(mask, expected[name]), name
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_forget_gradient_of_one_batch_is_the_gradient_of_the_mean_answer_nll(model):
    data = random_batch(8)
    gradient = forget_gradient(model, data, batch_size=8)
    params = dict(model.named_parameters())
    expected = torch.autograd.grad(mean_answer_nll(model, data), list(params.values()))
    assert gradient.keys() == params.keys()
    for name, value in zip(params, expected, strict=True):
        torch.testing.assert_close(gradient[name], value, rtol=1e-5, atol=1e-8, msg=name)


def test_top_k_masks_with_many_ties_match_a_sort_by_hand():
    generator = torch.Generator().manual_seed(0)
    scores = {  # four distinct values over 130 weights: every k cuts through a tie
        "w": torch.randint(0, 4, (6, 5), generator=generator).float(),
        "b": torch.randint(0, 4, (100,), generator=generator).float(),
    }
    for k in range(0, 131, 7):
        masks = top_k_masks(scores, k)
        expected = _k_largest_by_sort(scores, k)
        assert all(torch.equal(masks[n], expected[n]) for n in scores), k


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
