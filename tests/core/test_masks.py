import pytest
import torch

from mape_unlearn.core.method.architectures import layout_of, module_sizes, module_weight_masks
from mape_unlearn.core.method.masks import masks_applied
from tests.conftest import ENCODER_FAMILIES, tiny_model


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


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_encoder_families_mask_heads_and_filters_per_sample(family, batch):
    """BERT and RoBERTa (saved and reloaded): the same hooks, on the encoder's hidden states."""
    encoder = tiny_model(family)
    layout = layout_of(encoder)
    assert (layout.n_layers, layout.n_heads, layout.n_filters) == (2, 4, 48)

    def hidden(heads=None, filters=None):
        with torch.no_grad(), masks_applied(encoder, heads, filters):
            return encoder(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask
            ).last_hidden_state

    before = hidden()
    ones = hidden(torch.ones(layout.n_layers, layout.n_heads), torch.ones(2, 48))
    assert torch.equal(before, ones)
    heads = torch.ones(len(batch), layout.n_layers, layout.n_heads)
    heads[2, 1, 3] = 0.0
    masked = hidden(heads, None)
    changed = [(masked[i] - before[i]).abs().max().item() > 1e-6 for i in range(len(batch))]
    assert changed == [i == 2 for i in range(len(batch))]
    masks = module_weight_masks(
        encoder, torch.tensor([[False] * 4, [False, False, False, True]]), torch.zeros(2, 48) > 0
    )
    query = masks["encoder.layer.1.attention.self.query.weight"]
    assert query[24:].all() and not query[:24].any()  # head 3 of 4 owns rows 24-31 (32 wide)


def test_module_sizes_count_the_weights_a_head_and_a_filter_own():
    """GPT-2 (width d, head width h): a head owns its Q, K, V columns with their biases and its
    rows of the attention output, 4 d h + 3 h; a filter its FFN column with bias, and its row:
    2 d + 1."""
    model = tiny_model("gpt2")
    d = model.config.n_embd
    h = d // model.config.n_head
    assert module_sizes(model) == (4 * d * h + 3 * h, 2 * d + 1)
