import logging
import warnings

import torch

from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.precision import bf16_autocast

CPU = torch.device("cpu")


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


def test_gradients_match_finite_differences_of_the_loss(model, batch):
    """The head gradient is the derivative of the sample's summed answer NLL in its mask."""
    from mape_unlearn.core.method.losses import answer_nll
    from mape_unlearn.core.method.masks import masks_applied

    grads = per_sample_mask_gradients(model, batch, batch_size=len(batch), device=CPU)
    eps = 1e-3
    heads = torch.ones(2, 4, dtype=torch.float64)
    model = model.double()
    batch_one = batch.select(slice(0, 1))
    values = []
    for sign in (1, -1):
        shifted = heads.clone()
        shifted[1, 2] += sign * eps
        with torch.no_grad(), masks_applied(model, shifted, None):
            values.append(answer_nll(model, batch_one)[0].item())
    numeric = (values[0] - values[1]) / (2 * eps)
    assert abs(numeric - grads.heads[0, 1, 2].item()) < 1e-3 * max(1.0, abs(numeric))


def test_weights_keep_requires_grad_and_get_no_gradient(model, batch):
    per_sample_mask_gradients(model, batch, batch_size=3, device=CPU)
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_fisher_is_mean_squared_gradient(model, batch):
    grads = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU)
    fisher = grads.fisher()
    torch.testing.assert_close(fisher["heads"], (grads.heads**2).mean(0))
    assert fisher["filters"].shape == grads.filters.shape[1:]


def test_autocast_is_ignored_on_cpu_so_results_stay_float32(model, batch, caplog, monkeypatch):
    monkeypatch.setattr(precision, "_said_ignored", set())
    plain = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU)
    with caplog.at_level(logging.INFO, logger="mape_unlearn.core.runtime.precision"):
        autocast = per_sample_mask_gradients(model, batch, batch_size=3, device=CPU, autocast=True)
        per_sample_mask_gradients(model, batch, batch_size=3, device=CPU, autocast=True)
    assert torch.equal(plain.heads, autocast.heads)
    assert torch.equal(plain.filters, autocast.filters)
    said = [r.message for r in caplog.records if "autocast=true ignored on cpu" in r.message]
    assert len(said) == 1  # said once, not per call or per batch


def test_autocast_on_cuda_is_bf16():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU-only build warns that CUDA is unavailable
        context = bf16_autocast(torch.device("cuda"), enabled=True)
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    assert not isinstance(bf16_autocast(torch.device("cuda"), enabled=False), torch.autocast)
