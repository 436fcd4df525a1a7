"""An unsupported model family is refused with the file to edit, which exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from torch import nn
from transformers import PretrainedConfig

from mape_unlearn.core.method.architectures import family_of

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_family_names_the_table_to_extend():
    model = nn.Linear(2, 2)
    model.config = PretrainedConfig()
    model.config.model_type = "nosuch"
    with pytest.raises(ValueError, match="model_type='nosuch' is not supported") as raised:
        family_of(model)
    (path,) = re.findall(r"src/\S+\.py", str(raised.value))
    assert (ROOT / path).is_file()
