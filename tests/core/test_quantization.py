"""The quantization round trip (core/evaluation/quantization.py) against a hand computation."""

import torch
from transformers.pytorch_utils import Conv1D

from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.evaluation.quantization import (
    quantized_copy,
    quantized_forgetting,
    round_trip,
)
from tests.conftest import random_batch

CPU = torch.device("cpu")


def test_round_trip_rounds_each_output_channel_to_its_own_scale():
    weight = torch.tensor([[1.0, -0.4, 0.26], [0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])
    # 4 bits: 7 levels a side. Row 0: scale 1/7, w/scale = 7, -2.8, 1.82 -> 7, -3, 2.
    # Row 2: scale 3/7, w/scale = 7, 2.33, -4.67 -> 7, 2, -5. Row 1 stays zero.
    expected = torch.tensor([[1.0, -3 / 7, 2 / 7], [0.0, 0.0, 0.0], [3.0, 2 * 3 / 7, -5 * 3 / 7]])
    torch.testing.assert_close(round_trip(weight, 4), expected)
    # the same channels stored as columns ([in, out], GPT-2's Conv1D)
    torch.testing.assert_close(round_trip(weight.T, 4, out_dim=1), expected.T)


def test_int8_is_finer_than_4_bit_and_never_further_than_half_a_step():
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    step = weight.abs().amax(dim=1, keepdim=True) / 127
    error8 = (round_trip(weight, 8) - weight).abs()
    assert bool((error8 <= step / 2 + 1e-7).all())
    assert error8.mean() < (round_trip(weight, 4) - weight).abs().mean()


def test_a_quantized_copy_rounds_every_projection_but_the_head_and_leaves_the_model(model):
    before = {n: p.clone() for n, p in model.state_dict().items()}
    quantized = quantized_copy(model, 4)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the caller's model is untouched
    head = quantized.get_output_embeddings()
    projections = [
        (path, m)
        for path, m in quantized.named_modules()
        if type(m) in (torch.nn.Linear, Conv1D) and m is not head
    ]
    assert projections
    for path, module in projections:
        out_dim = 1 if isinstance(module, Conv1D) else 0
        original = model.get_submodule(path).weight
        torch.testing.assert_close(module.weight, round_trip(original, 4, out_dim))
    torch.testing.assert_close(head.weight, model.get_output_embeddings().weight)


def test_quantized_forgetting_reports_the_model_as_it_is_and_each_round_trip(model):
    row = quantized_forgetting(model, random_batch(6, seed=1), 4, CPU)
    assert set(row) == {
        f"{prefix}{metric}"
        for prefix in ("", "int8_", "int4_")
        for metric in ("fact_exact_match", "fact_accuracy")
    }
    for bits, prefix in ((None, ""), (8, "int8_"), (4, "int4_")):
        measured = model if bits is None else quantized_copy(model, bits)
        stats = teacher_forced_stats(measured, random_batch(6, seed=1), 4, CPU)
        assert row[f"{prefix}fact_exact_match"] == stats["fact_exact_match"]
        assert row[f"{prefix}fact_accuracy"] == stats["fact_accuracy"]
