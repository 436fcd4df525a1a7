import pytest
import torch

from mape_unlearn.core.architectures import layout_of
from mape_unlearn.core.selection import all_parameters, random_modules, saliency_parameters
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
    assert selected == pytest.approx(0.1 * model.num_parameters(), rel=0.01)
    # the selected weights are those the forget loss moves most: their gradient is non-zero
    model.zero_grad()
    from mape_unlearn.core.losses import mean_answer_nll

    mean_answer_nll(model, random_batch(8)).backward()
    for name, p in model.named_parameters():
        if masks[name].any():
            assert p.grad[masks[name]].abs().min() > 0, name
    assert all(p.requires_grad for p in model.parameters())
