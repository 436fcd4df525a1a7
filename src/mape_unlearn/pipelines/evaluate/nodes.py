"""Nodes of `evaluate`: TOFU-style metrics and the relearning attack per model, and the table."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.evaluation import compare_to_retrain, evaluate_split
from mape_unlearn.core.relearning import relearning_attack
from mape_unlearn.params import EvaluateParams

log = logging.getLogger(__name__)

SPLITS = ("forget", "retain", "holdout")

# (column title, where to read it: ("comparison", metric) or (split, metric))
TABLE_COLUMNS = (
    ("forget quality", ("comparison", "forget_quality")),
    ("model utility", ("comparison", "model_utility")),
    ("forget EM", ("forget", "exact_match")),
    ("forget ROUGE-L", ("forget", "rouge_l_recall")),
    ("forget truth ratio", ("forget", "truth_ratio")),
    ("retain EM", ("retain", "exact_match")),
    ("retain ROUGE-L", ("retain", "rouge_l_recall")),
    ("holdout ROUGE-L", ("holdout", "rouge_l_recall")),
    ("MIA AUC (Min-K%)", ("comparison", "mia_auc_min_k")),
    ("abs(AUC - 0.5)", ("comparison", "mia_gap_min_k")),
    ("privleak (Min-K%)", ("comparison", "privleak_min_k")),
    ("relearn: probe acc before", ("relearn", "probe_accuracy_before")),
    ("relearn: probe acc after", ("relearn", "probe_accuracy_after")),
    ("steps", ("cost", "steps")),
    ("reached retrain level", ("cost", "reached_target")),
    ("seconds", ("cost", "seconds")),
    ("trainable weights", ("cost", "trainable_parameters")),
)


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    params: EvaluateParams,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Metrics of one model on forget, retain and holdout, and its per-sample metrics."""
    device = resolve_device(params.device)
    summaries, samples = {}, []
    for name, split in zip(SPLITS, (forget_split, retain_split, holdout_split), strict=True):
        summaries[name], per_sample = evaluate_split(
            model, tokenizer, split, name, params.batch_size, device
        )
        samples.append(per_sample)
    attack = params.relearn
    summaries["relearn"] = relearning_attack(
        model,
        tokenizer,
        forget_split,
        attack.fraction,
        attack.epochs,
        attack.lr,
        attack.batch_size,
        attack.seed,
        device,
    )
    return summaries, pd.concat(samples, ignore_index=True)


def metrics_report(**artifacts: Any) -> tuple[dict[str, Any], str]:
    """All metrics as one JSON document and the comparison as a Markdown table (also logged).

    ``artifacts`` holds ``<model>`` (split summaries) and ``<model>_samples`` for each model,
    and ``<model>_cost`` for each unlearned one. Methods stop at the retrain model's forget
    accuracy, so the table compares them at matched forgetting (when ``reached``).
    """
    models = [name for name in artifacts if not name.endswith(("_samples", "_cost"))]
    summaries = {name: artifacts[name] for name in models}
    comparison = compare_to_retrain(
        summaries, {name: artifacts[f"{name}_samples"] for name in models}
    )
    metrics = {
        name: {
            **summaries[name],
            "comparison": comparison[name],
            "cost": artifacts.get(f"{name}_cost", {}),
        }
        for name in models
    }
    rows = [
        "| model | " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |",
        "|---|" + "---:|" * len(TABLE_COLUMNS),
    ]
    for name in models:
        cells = [metrics[name][group].get(key, float("nan")) for _, (group, key) in TABLE_COLUMNS]
        rows.append(f"| {name} | " + " | ".join(f"{float(cell):.3g}" for cell in cells) + " |")
    table = "\n".join(rows) + "\n"
    log.info("evaluation:\n%s", table)
    return metrics, table
