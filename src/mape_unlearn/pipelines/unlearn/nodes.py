"""Nodes of `unlearn`: which weights may change, and masked optimisation of just those."""

from __future__ import annotations

import logging
import time

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.architectures import module_parameter_masks
from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.metrics import teacher_forced_stats
from mape_unlearn.core.selection import (
    all_parameters,
    random_modules,
    saliency_parameters,
    searched_modules,
)
from mape_unlearn.core.splits import rows_not_forgotten
from mape_unlearn.core.unlearning import masked_unlearn
from mape_unlearn.params import MaskSearchParams, SelectorParams, UnlearnParams

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


def module_masks(
    original_model: PreTrainedModel, module_selection: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The weight slices owned by the selected heads and filters."""
    return module_parameter_masks(
        original_model, module_selection["heads"], module_selection["filters"]
    )


def select_parameters(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    training_split: pd.DataFrame,
    forget_gradients: dict[str, torch.Tensor],
    retain_gradients: dict[str, torch.Tensor],
    search: MaskSearchParams,
    selector: SelectorParams,
    unlearn: UnlearnParams,
) -> dict[str, torch.Tensor]:
    """The weights a compared method updates, at the same sparsity as the module mask."""
    if selector.kind == "modules":
        selection, _ = searched_modules(
            forget_gradients,
            retain_gradients,
            rows_not_forgotten(training_split, retain_gradients["rows"].tolist(), forget_split),
            sparsity=search.sparsity,
            objective=selector.objective or search.objective,
            lam=search.lam,
            max_sweeps=search.max_sweeps if selector.greedy else 0,
        )
    elif selector.kind == "random_modules":
        selection = random_modules(original_model, search.sparsity, selector.seed)
    elif selector.kind == "full":
        return all_parameters(original_model)
    else:
        return saliency_parameters(
            original_model,
            encode_frame(tokenizer, forget_split),
            selector.kind,
            search.sparsity,
            unlearn.batch_size,
            resolve_device(unlearn.device),
        )
    return module_parameter_masks(original_model, selection.heads, selection.filters)


def unlearn_model(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    parameter_masks: dict[str, torch.Tensor],
    target: dict[str, float | None],
    params: UnlearnParams,
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, float]]:
    """Unlearn the forget split by updating only the masked weights; trace and cost too."""
    total = sum(p.numel() for p in original_model.parameters())
    trainable = sum(int(m.sum()) for m in parameter_masks.values())
    log.info("trainable weights: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)
    start = time.perf_counter()
    model, trace = masked_unlearn(
        original_model,
        encode_frame(tokenizer, forget_split),
        encode_frame(tokenizer, retain_split),
        parameter_masks,
        rule=params.rule,
        lr=params.lr,
        max_steps=params.max_steps,
        alpha=params.alpha,
        batch_size=params.batch_size,
        eval_every=params.eval_every,
        target_forget_accuracy=target["forget_answer_token_accuracy"],
        seed=params.seed,
        device=resolve_device(params.device),
        beta=params.beta,
    )
    target_accuracy = target["forget_answer_token_accuracy"]
    final_accuracy = next(e["forget_accuracy"] for e in reversed(trace) if "forget_accuracy" in e)
    cost = {
        "seconds": time.perf_counter() - start,
        "steps": trace[-1]["step"],
        "trainable_parameters": trainable,
        "reached_target": target_accuracy is not None and final_accuracy <= target_accuracy,
    }
    return model.cpu(), trace, cost
