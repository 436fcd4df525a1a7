"""Samples longer than a model's positions are refused with what to do."""

from __future__ import annotations

import pytest

from mape_unlearn.core.runtime.models import check_fits
from tests.conftest import random_batch, tiny_model


def test_samples_longer_than_the_positions_are_refused():
    model = tiny_model("gpt2")  # 32 positions
    check_fits(model, random_batch(4, width=32), "forget_split")  # exactly fits
    with pytest.raises(
        ValueError,
        match=r"2 sample\(s\) of forget_split are longer than the "
        r"model's 32 positions \(the longest: 33 tokens",
    ):
        check_fits(model, random_batch(4, width=33), "forget_split")
