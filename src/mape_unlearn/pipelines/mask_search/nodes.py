"""Nodes of `mask_search`: the heads and filters to unlearn, by warm-start greedy search."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from transformers import PreTrainedModel

from mape_unlearn.core.data.splits import rows_not_forgotten
from mape_unlearn.core.method.architectures import module_sizes
from mape_unlearn.core.method.search import SearchSettings, warm_start_greedy

log = logging.getLogger(__name__)


def search_modules(
    original_model: PreTrainedModel,
    forget_gradients: dict[str, torch.Tensor],
    retain_gradients: dict[str, torch.Tensor],
    training_split: pd.DataFrame,
    forget_split: pd.DataFrame,
    params: SearchSettings,
) -> tuple[dict[str, torch.Tensor], list[dict[str, float | str]]]:
    """Select modules under the sparsity budget; the retain side excludes forgotten people.

    The model only says what a head and a filter weigh (``budget_in: parameters``)."""
    rows = retain_gradients["rows"].tolist()
    keep = torch.tensor(rows_not_forgotten(training_split, rows, forget_split), dtype=torch.bool)
    selection, trace = warm_start_greedy(
        forget_gradients["heads"],
        forget_gradients["filters"],
        retain_gradients["heads"][keep],
        retain_gradients["filters"][keep],
        params,
        module_sizes(original_model),
    )
    first, last = trace[0], trace[-1]
    log.info(
        "selected %d heads and %d filters; objective heads %.4g -> %.4g, filters %.4g -> %.4g "
        "after %d sweeps",
        int(selection.heads.sum()),
        int(selection.filters.sum()),
        first["objective_heads"],
        last["objective_heads"],
        first["objective_filters"],
        last["objective_filters"],
        len(trace) - 1,
    )
    return selection.as_dict(), trace
