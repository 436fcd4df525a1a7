import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, RobertaConfig
from transformers.pytorch_utils import Conv1D

from mape_unlearn.core.data.encoding import LabelBatch, TokenBatch
from mape_unlearn.core.method.architectures import layout_of, submodule
from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.method.losses import answer_nll
from tests.conftest import (
    CAUSAL_FAMILIES,
    ENCODER_FAMILIES,
    ENCODER_SHAPE,
    VOCAB,
    random_batch,
    tiny_model,
)

CPU = torch.device("cpu")


def _label_batch(n: int, pad: int, width: int = 12, seed: int = 0) -> LabelBatch:
    """Random right-padded texts of varying length with one of 3 class labels each."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    attention_mask = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        length = width - (i % 3)
        input_ids[i, :length] = torch.randint(5, VOCAB, (length,), generator=generator)
        attention_mask[i, :length] = 1
    labels = torch.randint(0, 3, (n,), generator=generator)
    return LabelBatch(input_ids, attention_mask, labels, torch.zeros_like(input_ids))


def _model_and_data(family: str) -> tuple[torch.nn.Module, TokenBatch]:
    """A tiny causal LM with QA samples, or a tiny encoder classifier with labelled texts."""
    if family in CAUSAL_FAMILIES:
        return tiny_model(family), random_batch()
    torch.manual_seed(0)
    pad = {"bert": 0, "roberta": 1}[family]
    config = {"bert": BertConfig, "roberta": RobertaConfig}[family](
        **ENCODER_SHAPE, vocab_size=VOCAB, pad_token_id=pad, num_labels=3
    )
    model = AutoModelForSequenceClassification.from_config(config).eval()
    return model, _label_batch(6, pad)


def test_one_pass_gradients_equal_single_sample_loop(model, batch):
    batched = per_sample_mask_gradients(model, batch, batch_size=4, device=CPU)
    singles = [
        per_sample_mask_gradients(model, batch.select(slice(i, i + 1)), batch_size=1, device=CPU)
        for i in range(len(batch))
    ]
    assert batched.heads.shape == (len(batch), 2, 4)
    assert batched.heads.abs().sum() > 0 and batched.filters.abs().sum() > 0
    torch.testing.assert_close(
        batched.heads, torch.cat([s.heads for s in singles]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        batched.filters, torch.cat([s.filters for s in singles]), atol=1e-5, rtol=0
    )


def _assert_close_at_scale(actual: torch.Tensor, expected: torch.Tensor, share: float) -> None:
    """Every entry within ``share`` of the largest ``|expected|``: the tiny random classifiers'
    gradients are ~1e-5, so a fixed absolute tolerance would pass anything."""
    scale = expected.abs().max().item()
    assert scale > 0 and actual.shape == expected.shape
    torch.testing.assert_close(actual.double(), expected.double(), rtol=0, atol=share * scale)


def _scale_inputs(module: torch.nn.Module, features: slice, factor: float) -> None:
    """Multiply the weights that read ``features`` of ``module``'s input by ``factor``: what a
    mask value of ``factor`` on those features does, with no hook (GPT-2's Conv1D stores
    ``[in, out]``, a Linear ``[out, in]``; a bias is added after the product and stays)."""
    with torch.no_grad():
        if isinstance(module, Conv1D):
            module.weight[features, :] *= factor
        else:
            module.weight[:, features] *= factor


@pytest.mark.parametrize("family", [*CAUSAL_FAMILIES, *ENCODER_FAMILIES])
def test_gradients_match_finite_differences_of_the_loss(family):
    """Every head's and every filter's gradient, for every sample, is the central difference of
    the sample's summed answer NLL as that module's input to the next projection is scaled by
    1 +- eps (float64): the derivative in its mask value at 1."""
    model, data = _model_and_data(family)
    model = model.double()
    grads = per_sample_mask_gradients(model, data, batch_size=4, device=CPU)
    layout = layout_of(model)
    eps = 1e-2
    numeric_heads = torch.zeros(len(data), layout.n_layers, layout.n_heads, dtype=torch.float64)
    numeric_filters = torch.zeros(len(data), layout.n_layers, layout.n_filters, dtype=torch.float64)
    for layer, block in enumerate(layout.blocks):
        for path, numeric, width in (
            (layout.family.attn_out, numeric_heads, layout.head_dim),
            (layout.family.ffn_down, numeric_filters, 1),
        ):
            module = submodule(block, path)
            weight = module.weight.detach().clone()
            for index in range(numeric.shape[2]):
                features = slice(index * width, (index + 1) * width)
                values = []
                for factor in (1 + eps, 1 - eps):
                    _scale_inputs(module, features, factor)
                    with torch.no_grad():
                        values.append(answer_nll(model, data)[0])  # [n], one per sample
                        module.weight.copy_(weight)
                numeric[:, layer, index] = (values[0] - values[1]) / (2 * eps)
    # Llama-style RMSNorm computes in float32 even in a float64 model: eps large enough for
    # its rounding, small enough for the O(eps^2) error of the central difference
    _assert_close_at_scale(grads.heads, numeric_heads, 2e-3)
    _assert_close_at_scale(grads.filters, numeric_filters, 2e-3)


def test_weights_keep_requires_grad_and_get_no_gradient(model, batch):
    per_sample_mask_gradients(model, batch, batch_size=3, device=CPU)
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def _leaf_mask_gradients(model: torch.nn.Module, sample) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample's head and filter mask gradients, ``[L, H]`` and ``[L, d_ff]``, by plain
    autograd: shared masks of ones as leaf tensors, applied by this test's own pre-hooks (not
    ``core.method.masks``) that scale each head's slice of the attention output projection's
    input and each filter of the down projection's input."""
    layout = layout_of(model)
    heads = torch.ones(layout.n_layers, layout.n_heads, requires_grad=True)
    filters = torch.ones(layout.n_layers, layout.n_filters, requires_grad=True)

    def scaled_by(mask: torch.Tensor, groups: int):
        def pre_hook(_module, args):
            x = args[0]  # [1, T, groups * width]
            return ((x.unflatten(-1, (groups, -1)) * mask[:, None]).flatten(-2), *args[1:])

        return pre_hook

    handles = []
    for layer, block in enumerate(layout.blocks):
        for path, mask in ((layout.family.attn_out, heads), (layout.family.ffn_down, filters)):
            hook = scaled_by(mask[layer], mask.shape[1])
            handles.append(submodule(block, path).register_forward_pre_hook(hook))
    try:
        loss = answer_nll(model, sample)[0].sum()
    finally:
        for handle in handles:
            handle.remove()
    g_heads, g_filters = torch.autograd.grad(loss, [heads, filters])
    return g_heads, g_filters


@pytest.mark.parametrize("family", [*CAUSAL_FAMILIES, "bert"])
def test_fisher_is_the_mean_of_squared_single_sample_mask_gradients(family):
    """Per-sample gradients and the diagonal Fisher of heads and filters against a loop of
    single-sample backward passes with leaf masks: ``F = mean_j g_j^2``, elementwise."""
    model, data = _model_and_data(family)
    grads = per_sample_mask_gradients(model, data, batch_size=4, device=CPU)
    singles = [_leaf_mask_gradients(model, data.select(slice(j, j + 1))) for j in range(len(data))]
    heads = torch.stack([h for h, _ in singles])  # [n, L, H]
    filters = torch.stack([f for _, f in singles])  # [n, L, d_ff]
    _assert_close_at_scale(grads.heads, heads, 1e-4)
    _assert_close_at_scale(grads.filters, filters, 1e-4)
    fisher = grads.fisher()
    assert fisher.keys() == {"heads", "filters"}
    _assert_close_at_scale(fisher["heads"], heads.square().mean(0), 1e-4)
    _assert_close_at_scale(fisher["filters"], filters.square().mean(0), 1e-4)
    # the mean of the squares, not the square of the mean: larger where samples disagree
    assert (fisher["filters"] > 1.01 * filters.mean(0).square()).any()


def test_autocast_auto_leaves_a_small_model_float32_and_bf16_stays_close(model, batch):
    plain = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU)
    auto = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU, autocast="auto")
    bf16 = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU, autocast="bf16")
    assert torch.equal(plain.heads, auto.heads) and torch.equal(plain.filters, auto.filters)
    assert bf16.heads.dtype == torch.float32 and not torch.equal(plain.heads, bf16.heads)
    _assert_close_at_scale(bf16.heads, plain.heads, 0.05)
    _assert_close_at_scale(bf16.filters, plain.filters, 0.05)
