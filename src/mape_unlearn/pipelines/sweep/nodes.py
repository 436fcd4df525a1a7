"""Nodes of `sweep`: each swept method unlearned again at each sparsity, and the sweep table."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.params import MaskSearchParams, SelectorParams, SweepParams, UnlearnParams
from mape_unlearn.pipelines.unlearn.nodes import select_and_unlearn

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
    search: MaskSearchParams,
    selector: SelectorParams,
    unlearn: UnlearnParams,
    sweep: SweepParams,
) -> list[dict[str, Any]]:
    """One method unlearned at each sparsity of the sweep: cost and trajectory per point."""
    points = []
    for sparsity in sweep.sparsities:
        _, trace, cost = select_and_unlearn(
            original_model,
            tokenizer,
            forget_split,
            retain_split,
            training_split,
            (forget_gradients, retain_gradients),
            target,
            search.model_copy(update={"sparsity": sparsity}),
            selector,
            unlearn,
        )
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
