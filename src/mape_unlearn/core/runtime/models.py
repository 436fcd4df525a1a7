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

from mape_unlearn.core.data.encoding import TokenBatch


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


def check_fits(model: PreTrainedModel, data: TokenBatch, split: str) -> None:
    """Refuse samples longer than the model's positions, before they fail deep in a forward
    pass (or, with absolute position embeddings, index out of range)."""
    config = model.config
    limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    lengths = data.attention_mask.sum(dim=1)
    if limit is None or int(lengths.max()) <= limit:
        return
    longest = int(lengths.max())
    raise ValueError(
        f"{int((lengths > limit).sum())} sample(s) of {split} are longer than the model's "
        f"{limit} positions (the longest: {longest} tokens, question and answer together): "
        "shorten those questions or answers, or use a model with more positions "
        "(train.architecture.n_positions for the embedded model)"
    )
