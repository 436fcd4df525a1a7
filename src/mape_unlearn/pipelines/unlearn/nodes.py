"""Nodes of `unlearn`: which weights may change, and masked optimisation of just those."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.splits import check_disjoint
from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.methods import (
    deletion_request,
    method_settings,
    select_weights,
    unlearn_weights,
)
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.stopping import never_seen_nll, stop_level
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.models import check_fits

log = logging.getLogger(__name__)


def retrain_level(
    retrain_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    params: UnlearnSettings,
) -> dict[str, float | str | list[float] | None]:
    """Where unlearning may stop (``unlearn.target: retrain``): the retrain model's
    ``stop_metric`` on the forget people."""
    return _target_level(retrain_model, tokenizer, forget_split, params, "retrain")


def holdout_level(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    holdout_split: pd.DataFrame,
    params: UnlearnSettings,
) -> dict[str, float | str | list[float] | None]:
    """Where unlearning may stop (``unlearn.target: holdout``): the original model's
    ``stop_metric`` on the holdout people, whom it never saw — no retrain model needed."""
    return _target_level(original_model, tokenizer, holdout_split, params, "holdout")


def _target_level(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: pd.DataFrame,
    params: UnlearnSettings,
    target: str,
) -> dict[str, float | str | list[float] | None]:
    if params.target != target:
        raise ValueError(
            f"unlearn.target={params.target!r} differs from the {target!r} this pipeline was "
            "registered with: unlearn.target shapes the pipeline, so set it in "
            "conf/<env>/parameters_unlearn.yml, not with --params"
        )
    data = encode_frame(tokenizer, split)
    # what the never-seen rules (bounded, match) aim each forget answer at
    never_seen = never_seen_nll(model, data, params).tolist()
    if not params.stop_at_retrain_level:
        level = None
    else:
        level = stop_level(model, data, params)
        whose = "retrain model, forget people" if target == "retrain" else "original, holdout"
        log.info("target forget %s: %.3f (%s)", params.stop_metric, level, whose)
    return {
        "stop_metric": params.stop_metric,
        "target": target,
        "forget_level": level,
        "never_seen_nll": never_seen,
    }


def selection_weight_masks(
    original_model: PreTrainedModel, module_selection: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The weight slices owned by the selected heads and filters."""
    return module_weight_masks(
        original_model, module_selection["heads"], module_selection["filters"]
    )


def select_method_weights(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    training_split: pd.DataFrame,
    forget_gradients: dict[str, torch.Tensor],
    retain_gradients: dict[str, torch.Tensor],
    search: SearchSettings,
    selector: Selector,
    unlearn: UnlearnSettings,
) -> dict[str, torch.Tensor]:
    """The weights a compared method updates, at the same sparsity as the module mask."""
    gradients = (forget_gradients, retain_gradients, training_split)
    request = deletion_request(tokenizer, forget_split, retain_split, gradients=gradients)
    return select_weights(
        original_model, selector, request, search, method_settings(selector, unlearn)
    )


def unlearn_model(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    weight_masks: dict[str, torch.Tensor],
    target: dict[str, float | str | None],
    params: UnlearnSettings,
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, float]]:
    """Unlearn the forget split by updating only the masked weights; trace and cost too."""
    check_disjoint(forget_split, retain_split)
    request = deletion_request(
        tokenizer,
        forget_split,
        retain_split,
        target["forget_level"],
        never_seen=target.get("never_seen_nll"),
    )
    check_fits(original_model, request.forget, "forget_split")
    check_fits(original_model, request.retain, "retain_split")
    total = sum(p.numel() for p in original_model.parameters())
    trainable = sum(int(m.sum()) for m in weight_masks.values())
    log.info("trainable weights: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)
    return unlearn_weights(original_model, request, weight_masks, params)


def unlearn_method_model(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    weight_masks: dict[str, torch.Tensor],
    target: dict[str, float | str | None],
    params: UnlearnSettings,
    selector: Selector,
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, float]]:
    """:func:`unlearn_model` with a compared method's own settings of ``unlearn``
    (``baselines.<method>.unlearn``)."""
    settings = method_settings(selector, params)
    return unlearn_model(
        original_model, tokenizer, forget_split, retain_split, weight_masks, target, settings
    )


def release_model(
    unlearned_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> dict[str, PreTrainedModel | PreTrainedTokenizerBase]:
    """The unlearned model with its tokenizer: one directory a user ships and loads with
    ``AutoModelFor….from_pretrained`` and ``AutoTokenizer.from_pretrained``."""
    return {"model": unlearned_model, "tokenizer": tokenizer}
