"""Nodes of `sweep`: each swept method unlearned again at each sparsity, and the sweep table."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.method.methods import deletion_request, select_and_unlearn
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.params import SweepParams

log = logging.getLogger(__name__)


def sparsity_sweep(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    training_split: pd.DataFrame,
    forget_gradients: dict[str, torch.Tensor],
    retain_gradients: dict[str, torch.Tensor],
    retain_split: pd.DataFrame,
    target: dict[str, float | None],
    search: SearchSettings,
    selector: Selector,
    unlearn: UnlearnSettings,
    sweep: SweepParams,
) -> list[dict[str, Any]]:
    """One method unlearned at each sparsity of the sweep: cost and trajectory per point."""
    gradients = (forget_gradients, retain_gradients, training_split)
    request = deletion_request(
        tokenizer,
        forget_split,
        retain_split,
        target["forget_level"],
        gradients,
        target.get("never_seen_nll"),
    )
    points = []
    for sparsity in sweep.sparsities:
        at_sparsity = replace(search, sparsity=sparsity)
        _, trace, cost = select_and_unlearn(original_model, selector, request, at_sparsity, unlearn)
        log.info(
            "sparsity %.2f: %d steps, retain accuracy at matched forgetting %.3f",
            sparsity,
            cost["steps"],
            cost["retain_accuracy_at_matched_forgetting"],
        )
        points.append({"sparsity": sparsity, **cost, "trace": trace})
    return points


def sweep_report(**sweeps: list[dict[str, Any]]) -> pd.DataFrame:
    """The sweep as one table: a row per method and sparsity (keyword = method)."""
    return pd.DataFrame(
        [
            {"method": method, **{k: v for k, v in point.items() if k != "trace"}}
            for method, points in sweeps.items()
            for point in points
        ]
    )
