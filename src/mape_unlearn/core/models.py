"""Building models from a config: the embedded default's causal LM or a classifier, or a fresh
copy of a user's (the retrain reference), with no downloads."""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


def build_model(
    model_type: str,
    config: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    num_labels: int | None = None,
) -> PreTrainedModel:
    """A randomly initialised model of ``model_type`` sized for ``tokenizer``'s vocabulary: a
    causal LM, or with ``num_labels`` a sequence classifier."""
    torch.manual_seed(seed)
    model_config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config,
        **({} if num_labels is None else {"num_labels": num_labels}),
    )
    if num_labels is None:
        return AutoModelForCausalLM.from_config(model_config)
    return AutoModelForSequenceClassification.from_config(model_config)


def fresh_like(model: PreTrainedModel, seed: int) -> PreTrainedModel:
    """A randomly initialised model of ``model``'s class and configuration.

    The retrain reference of a user's model: same architecture, none of its training.
    """
    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config))
