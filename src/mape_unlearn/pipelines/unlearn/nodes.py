"""Nodes of `unlearn`: masked optimisation of the selected heads' and filters' weights."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.architectures import module_parameter_masks
from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.metrics import teacher_forced_stats
from mape_unlearn.core.unlearning import masked_unlearn
from mape_unlearn.params import UnlearnParams

log = logging.getLogger(__name__)


def forget_accuracy_target(
    retrain_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    params: UnlearnParams,
) -> dict[str, float | None]:
    """The retrain reference's forget answer-token accuracy: where unlearning may stop."""
    if not params.stop_at_retrain_level:
        return {"forget_answer_token_accuracy": None}
    stats = teacher_forced_stats(
        retrain_model,
        encode_frame(tokenizer, forget_split),
        params.batch_size,
        resolve_device(params.device),
    )
    log.info("retrain reference forget accuracy: %.3f", stats["answer_token_accuracy"])
    return {"forget_answer_token_accuracy": stats["answer_token_accuracy"]}


def unlearn_model(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    module_selection: dict[str, torch.Tensor],
    target: dict[str, float | None],
    params: UnlearnParams,
) -> tuple[PreTrainedModel, list[dict[str, float]]]:
    """Unlearn the forget split by updating only the selected modules' weight slices."""
    masks = module_parameter_masks(
        original_model, module_selection["heads"], module_selection["filters"]
    )
    total = sum(p.numel() for p in original_model.parameters())
    trainable = sum(int(m.sum()) for m in masks.values())
    log.info("trainable weights: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)
    model, trace = masked_unlearn(
        original_model,
        encode_frame(tokenizer, forget_split),
        encode_frame(tokenizer, retain_split),
        masks,
        rule=params.rule,
        lr=params.lr,
        max_steps=params.max_steps,
        alpha=params.alpha,
        batch_size=params.batch_size,
        eval_every=params.eval_every,
        target_forget_accuracy=target["forget_answer_token_accuracy"],
        seed=params.seed,
        device=resolve_device(params.device),
    )
    return model.cpu(), trace
