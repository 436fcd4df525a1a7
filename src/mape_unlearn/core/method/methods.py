"""A compared method end to end (docs/method.md §4-5): the weights it selects, masked unlearning
to the stop, and what that cost; once, or with the mask searched again as the model changes.

Every user of a method — the `unlearn` stage and its baselines, the sparsity sweep, successive
requests, the study — goes through :func:`select_and_unlearn` or :func:`unlearn_with_research`, so a
method means the same thing everywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import TokenBatch, encode_frame, scored_on
from mape_unlearn.core.data.splits import rows_not_forgotten
from mape_unlearn.core.method.architectures import module_sizes, module_weight_masks
from mape_unlearn.core.method.importance import MaskGradients
from mape_unlearn.core.method.search import SearchSettings, warm_start_greedy
from mape_unlearn.core.method.selection import (
    Selector,
    all_parameters,
    random_modules,
    saliency_parameters,
)
from mape_unlearn.core.method.stopping import matched_forgetting
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.method.unlearning import masked_unlearn, optimizer_state_bytes
from mape_unlearn.core.runtime.device import resolve_device

Trace = list[dict[str, float]]


@dataclass(frozen=True)
class DeletionRequest:
    """One deletion request as every method receives it."""

    forget: TokenBatch  # the rows to forget
    retain: TokenBatch  # the rows to keep
    target_accuracy: float | None = None  # forget level to stop at (None: run to max_steps)
    # NLL per scored token of answers a model never saw, ``[m]``: the distribution the
    # never-seen rules aim the forget answers at (stopping.never_seen_nll); None for the others
    never_seen: torch.Tensor | None = None
    # per-sample mask gradients of the forget rows and of retain rows (people being forgotten
    # dropped): what a module search needs; None for a method given its weights
    forget_gradients: MaskGradients | None = None
    retain_gradients: MaskGradients | None = None


def deletion_request(
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    target_accuracy: float | None = None,
    gradients: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], pd.DataFrame] | None = None,
    never_seen: list[float] | None = None,
) -> DeletionRequest:
    """A request from a stage's data: the splits encoded; ``gradients`` = the stored (forget,
    retain) mask gradients and the split the retain rows index (``rows``), whose rows of people
    being forgotten are dropped (docs/method.md §1); ``never_seen``: the never-seen NLLs of the
    stop target (stopping.never_seen_nll)."""
    forget, retain = encode_frame(tokenizer, forget_split), encode_frame(tokenizer, retain_split)
    levels = None if never_seen is None else torch.tensor(never_seen, dtype=torch.float32)
    if gradients is None:
        return DeletionRequest(forget, retain, target_accuracy, levels)
    forget_gradients, retain_gradients, trained_on = gradients
    rows = retain_gradients["rows"].tolist()
    keep = torch.tensor(rows_not_forgotten(trained_on, rows, forget_split), dtype=torch.bool)
    return DeletionRequest(
        forget,
        retain,
        target_accuracy,
        levels,
        MaskGradients(forget_gradients["heads"], forget_gradients["filters"]),
        MaskGradients(retain_gradients["heads"][keep], retain_gradients["filters"][keep]),
    )


def select_weights(
    model: nn.Module,
    selector: Selector,
    request: DeletionRequest,
    search: SearchSettings,
    unlearn: UnlearnSettings,
) -> dict[str, torch.Tensor]:
    """The weights ``selector`` updates, at the sparsity of ``search``, as parameter masks."""
    if selector.kind == "modules":
        if request.forget_gradients is None or request.retain_gradients is None:
            raise ValueError("a module search needs the request's mask gradients")
        searched = replace(
            search,
            objective=selector.objective or search.objective,
            max_sweeps=search.max_sweeps if selector.greedy else 0,
        )
        selection, _ = warm_start_greedy(
            request.forget_gradients.heads,
            request.forget_gradients.filters,
            request.retain_gradients.heads,
            request.retain_gradients.filters,
            searched,
            module_sizes=module_sizes(model),
        )
    elif selector.kind == "random_modules":
        selection = random_modules(model, search.sparsity, selector.seed)
    elif selector.kind == "full":
        return all_parameters(model)
    else:  # saliency of the forget term the method then descends
        forget = scored_on(request.forget, unlearn.forget_tokens)
        device = resolve_device(unlearn.device)
        return saliency_parameters(
            model, forget, selector.kind, search.sparsity, unlearn.batch_size, device
        )
    return module_weight_masks(model, selection.heads, selection.filters)


def unlearn_weights(
    model: nn.Module,
    request: DeletionRequest,
    masks: dict[str, torch.Tensor],
    unlearn: UnlearnSettings,
) -> tuple[nn.Module, Trace, dict[str, Any]]:
    """Masked unlearning of ``request`` (a copy of ``model``), its trace and its cost."""
    device = resolve_device(unlearn.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    unlearned, trace = masked_unlearn(
        model,
        request.forget,
        request.retain,
        masks,
        unlearn,
        request.target_accuracy,
        device,
        never_seen=request.never_seen,
    )
    cost = {
        "seconds": time.perf_counter() - start,
        "steps": trace[-1]["step"],
        "trainable_parameters": sum(int(m.sum()) for m in masks.values()),
        **trace_outcome(trace, request.target_accuracy),
        "optimizer_state_mb": optimizer_state_bytes(model, masks, unlearn.rule) / 2**20,
        "peak_cuda_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else math.nan,
    }
    return unlearned.cpu(), trace, cost


def trace_outcome(trace: Trace, target_accuracy: float | None) -> dict[str, float | bool]:
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


def select_and_unlearn(
    model: nn.Module,
    selector: Selector,
    request: DeletionRequest,
    search: SearchSettings,
    unlearn: UnlearnSettings,
) -> tuple[nn.Module, Trace, dict[str, Any]]:
    """One compared method on one request: its weights selected, then unlearned, both with
    its settings of ``unlearn``."""
    unlearn = method_settings(selector, unlearn)
    masks = select_weights(model, selector, request, search, unlearn)
    return unlearn_weights(model, request, masks, unlearn)


def method_settings(selector: Selector, unlearn: UnlearnSettings) -> UnlearnSettings:
    """``unlearn`` with the settings the method changes (``baselines.<method>.unlearn``: e.g.
    ``mape_sam``'s optimizer), validated again together."""
    return replace(unlearn, **selector.unlearn)


def unlearn_with_research(
    model: nn.Module,
    selector: Selector,
    request: DeletionRequest,
    settings: tuple[SearchSettings, UnlearnSettings],
    research_every: int,
    gradients_on: Callable[[nn.Module], tuple[MaskGradients, MaskGradients]],
) -> tuple[nn.Module, Trace, dict[str, Any]]:
    """:func:`select_and_unlearn`, the mask searched again every ``research_every`` steps.

    Each segment starts from the model the last one left, with the (forget, retain) mask
    gradients ``gradients_on`` computes on it, a fresh optimiser (and, for ``npo`` or a KL term,
    that model as the reference), until the target or ``max_steps`` in all.
    ``research_every=0`` is a single search.
    """
    search, unlearn = settings
    trace: Trace = []
    seconds, done = 0.0, 0
    while True:
        left = unlearn.max_steps - done
        segment = replace(unlearn, max_steps=min(research_every or left, left))
        model, part, cost = select_and_unlearn(model, selector, request, search, segment)
        part = part[1:] if trace else part  # a segment's step 0 is the last one's end
        trace += [{**entry, "step": entry["step"] + done} for entry in part]
        seconds, done = seconds + cost["seconds"], trace[-1]["step"]
        if cost["reached_target"] or done >= unlearn.max_steps or "stopped_non_finite" in part[-1]:
            break
        forget_gradients, retain_gradients = gradients_on(model)
        request = replace(
            request, forget_gradients=forget_gradients, retain_gradients=retain_gradients
        )
    outcome = trace_outcome(trace, request.target_accuracy)
    return model, trace, {**cost, "seconds": seconds, "steps": done, **outcome}
