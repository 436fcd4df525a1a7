"""Nodes of `evaluate`: answer metrics of each model on each split, and the comparison table."""

from __future__ import annotations

import logging

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.metrics import answer_metrics
from mape_unlearn.params import EvaluateParams

log = logging.getLogger(__name__)

SPLITS = ("forget", "retain", "holdout")
MODELS = ("original", "unlearned", "retrain")


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    params: EvaluateParams,
) -> dict[str, dict[str, float]]:
    """Answer NLL, answer-token accuracy and exact match on forget, retain and holdout."""
    device = resolve_device(params.device)
    return {
        name: answer_metrics(model, encode_frame(tokenizer, split), params.batch_size, device)
        for name, split in zip(SPLITS, (forget_split, retain_split, holdout_split), strict=True)
    }


def metrics_report(
    original: dict, unlearned: dict, retrain: dict
) -> tuple[dict[str, dict[str, dict[str, float]]], str]:
    """All metrics as one JSON document and as a Markdown table, which is also logged."""
    metrics = dict(zip(MODELS, (original, unlearned, retrain), strict=True))
    columns = [(split, metric) for split in SPLITS for metric in metrics["original"][split]]
    rows = [
        "| model | " + " | ".join(f"{split} {metric}" for split, metric in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for model, values in metrics.items():
        cells = " | ".join(f"{values[split][metric]:.3f}" for split, metric in columns)
        rows.append(f"| {model} | {cells} |")
    table = "\n".join(rows) + "\n"
    log.info("evaluation:\n%s", table)
    return metrics, table
