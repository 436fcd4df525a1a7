"""Building causal LMs from a config: the embedded default's, or a fresh copy of a user's
(the retrain reference), with no downloads."""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase


def build_causal_lm(
    model_type: str, config: dict[str, Any], tokenizer: PreTrainedTokenizerBase, seed: int
) -> PreTrainedModel:
    """A randomly initialised model of ``model_type`` sized for ``tokenizer``'s vocabulary."""
    torch.manual_seed(seed)
    model_config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config,
    )
    return AutoModelForCausalLM.from_config(model_config)


def fresh_like(model: PreTrainedModel, seed: int) -> PreTrainedModel:
    """A randomly initialised model of ``model``'s class and configuration.

    The retrain reference of a user's model: same architecture, none of its training.
    """
    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config))
