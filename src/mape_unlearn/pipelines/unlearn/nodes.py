"""Nodes of `unlearn`: which weights may change, and masked optimisation of just those."""

from __future__ import annotations

import logging
import math
import time

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.architectures import module_parameter_masks, module_sizes
from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame, scored_on
from mape_unlearn.core.metrics import teacher_forced_stats
from mape_unlearn.core.models import check_fits
from mape_unlearn.core.selection import (
    all_parameters,
    random_modules,
    saliency_parameters,
    searched_modules,
)
from mape_unlearn.core.splits import check_disjoint, rows_not_forgotten
from mape_unlearn.core.unlearning import (
    UnlearnSettings,
    masked_unlearn,
    matched_forgetting,
    optimizer_state_bytes,
)
from mape_unlearn.params import MaskSearchParams, SelectorParams, UnlearnParams

log = logging.getLogger(__name__)


def retrain_level(
    retrain_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    params: UnlearnParams,
) -> dict[str, float | str | None]:
    """Where unlearning may stop (``unlearn.target: retrain``): the retrain model's
    ``stop_metric`` on the forget people."""
    return _target_level(retrain_model, tokenizer, forget_split, params, "retrain")


def holdout_level(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    holdout_split: pd.DataFrame,
    params: UnlearnParams,
) -> dict[str, float | str | None]:
    """Where unlearning may stop (``unlearn.target: holdout``): the original model's
    ``stop_metric`` on the holdout people, whom it never saw — no retrain model needed."""
    return _target_level(original_model, tokenizer, holdout_split, params, "holdout")


def _target_level(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: pd.DataFrame,
    params: UnlearnParams,
    target: str,
) -> dict[str, float | str | None]:
    if params.target != target:
        raise ValueError(
            f"unlearn.target={params.target!r} differs from the {target!r} this pipeline was "
            "registered with: unlearn.target shapes the pipeline, so set it in "
            "conf/<env>/parameters_unlearn.yml, not with --params"
        )
    if not params.stop_at_retrain_level:
        return {"stop_metric": params.stop_metric, "target": target, "forget_level": None}
    level = teacher_forced_stats(
        model, encode_frame(tokenizer, split), params.batch_size, resolve_device(params.device)
    )[params.stop_metric]
    whose = "retrain model, forget people" if target == "retrain" else "original, holdout people"
    log.info("target forget %s: %.3f (%s)", params.stop_metric, level, whose)
    return {"stop_metric": params.stop_metric, "target": target, "forget_level": level}


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
            quota=search.quota,
            modules=search.modules,
            budget_in=search.budget_in,
            module_sizes=module_sizes(original_model),
        )
    elif selector.kind == "random_modules":
        selection = random_modules(original_model, search.sparsity, selector.seed)
    elif selector.kind == "full":
        return all_parameters(original_model)
    else:
        return saliency_parameters(  # saliency of the forget term the method then descends
            original_model,
            scored_on(encode_frame(tokenizer, forget_split), unlearn.forget_tokens),
            selector.kind,
            search.sparsity,
            unlearn.batch_size,
            resolve_device(unlearn.device),
        )
    return module_parameter_masks(original_model, selection.heads, selection.filters)


def unlearn_settings(params: UnlearnParams) -> UnlearnSettings:
    """The core's settings from the stage parameters (device and stop switch stay here)."""
    fields = UnlearnSettings.__dataclass_fields__
    return UnlearnSettings(**params.model_dump(include=set(fields)))


def trace_outcome(
    trace: list[dict[str, float]], target_accuracy: float | None
) -> dict[str, float | bool]:
    """Whether, when and at what retain accuracy the trace met the target."""
    matched = matched_forgetting(trace, target_accuracy)
    return {
        "reached_target": not math.isnan(matched["step"]),
        "steps_to_matched_forgetting": matched["step"],
        "forget_accuracy_at_matched_forgetting": matched["forget_accuracy"],
        "retain_accuracy_at_matched_forgetting": matched["retain_accuracy"],
        "forget_accuracy_at_stop": matched["forget_accuracy_at_stop"],
        "target_forget_accuracy": math.nan if target_accuracy is None else target_accuracy,
    }


def unlearn_model(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    parameter_masks: dict[str, torch.Tensor],
    target: dict[str, float | str | None],
    params: UnlearnParams,
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, float]]:
    """Unlearn the forget split by updating only the masked weights; trace and cost too."""
    check_disjoint(forget_split, retain_split)
    total = sum(p.numel() for p in original_model.parameters())
    trainable = sum(int(m.sum()) for m in parameter_masks.values())
    log.info("trainable weights: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)
    device = resolve_device(params.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    target_accuracy = target["forget_level"]
    start = time.perf_counter()
    forget, retain = encode_frame(tokenizer, forget_split), encode_frame(tokenizer, retain_split)
    check_fits(original_model, forget, "forget_split")
    check_fits(original_model, retain, "retain_split")
    model, trace = masked_unlearn(
        original_model,
        forget,
        retain,
        parameter_masks,
        unlearn_settings(params),
        target_forget_accuracy=target_accuracy,
        device=device,
    )
    seconds = time.perf_counter() - start
    cost = {
        "seconds": seconds,
        "steps": trace[-1]["step"],
        "trainable_parameters": trainable,
        **trace_outcome(trace, target_accuracy),
        "optimizer_state_mb": optimizer_state_bytes(original_model, parameter_masks, params.rule)
        / 2**20,
        "peak_cuda_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else math.nan,
    }
    return model.cpu(), trace, cost


def release_model(
    unlearned_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> dict[str, PreTrainedModel | PreTrainedTokenizerBase]:
    """The unlearned model with its tokenizer: one directory a user ships and loads with
    ``AutoModelFor….from_pretrained`` and ``AutoTokenizer.from_pretrained``."""
    return {"model": unlearned_model, "tokenizer": tokenizer}


def select_and_unlearn(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    training_split: pd.DataFrame,
    gradients: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    target: dict[str, float | None],
    search: MaskSearchParams,
    selector: SelectorParams,
    unlearn: UnlearnParams,
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, float]]:
    """One compared setting end to end (the sweep's and the study's unit of work): its selection
    from the (forget, retain) mask gradients, then :func:`unlearn_model`."""
    masks = select_parameters(
        original_model,
        tokenizer,
        forget_split,
        training_split,
        *gradients,
        search,
        selector,
        unlearn,
    )
    return unlearn_model(
        original_model, tokenizer, forget_split, retain_split, masks, target, unlearn
    )
