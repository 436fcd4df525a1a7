import torch

from mape_unlearn.core.architectures import layout_of
from mape_unlearn.core.masks import masks_applied


def _logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_all_ones_masks_leave_outputs_unchanged(model, batch):
    layout = layout_of(model)
    before = _logits(model, batch)
    with masks_applied(
        model,
        torch.ones(layout.n_layers, layout.n_heads),
        torch.ones(layout.n_layers, layout.n_filters),
    ):
        masked = _logits(model, batch)
    assert torch.equal(before, masked)


def test_zeroed_mask_for_one_sample_changes_only_that_sample(model, batch):
    layout = layout_of(model)
    heads = torch.ones(len(batch), layout.n_layers, layout.n_heads)
    filters = torch.ones(len(batch), layout.n_layers, layout.n_filters)
    heads[2, 0, 1] = 0.0
    filters[2, 1, :5] = 0.0
    before = _logits(model, batch)
    with masks_applied(model, heads, filters):
        masked = _logits(model, batch)
    changed = [(masked[i] - before[i]).abs().max().item() > 1e-6 for i in range(len(batch))]
    assert changed == [i == 2 for i in range(len(batch))]


def test_hooks_are_removed_after_the_block(model, batch):
    layout = layout_of(model)
    before = _logits(model, batch)
    with masks_applied(model, torch.zeros(layout.n_layers, layout.n_heads), None):
        assert not torch.allclose(_logits(model, batch), before)
    assert torch.equal(_logits(model, batch), before)
