"""Nodes of `evaluate`: TOFU-style metrics, the relearning attack and the quantization
round trip per model, and the table."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.evaluation.protocol import (
    compare_to_retrain,
    degenerate_metrics,
    evaluate_split,
)
from mape_unlearn.core.evaluation.quantization import quantized_forgetting
from mape_unlearn.core.evaluation.relearning import RelearnSettings, relearning_attack
from mape_unlearn.core.runtime.device import resolve_device
from mape_unlearn.core.runtime.precision import Autocast

log = logging.getLogger(__name__)

# (column title, where to read it: ("comparison", metric) or (split, metric))
TABLE_COLUMNS = (
    ("forget quality", ("comparison", "forget_quality")),
    ("model utility", ("comparison", "model_utility")),
    ("world utility", ("comparison", "world_utility")),
    ("world fact recall", ("world", "fact_recall")),
    ("forget EM", ("forget", "exact_match")),
    ("forget fact acc", ("forget", "fact_accuracy")),
    ("forget fact recall", ("forget", "fact_recall")),
    ("forget ROUGE-L", ("forget", "rouge_l_recall")),
    ("forget truth ratio", ("forget", "truth_ratio")),
    ("retain EM", ("retain", "exact_match")),
    ("retain fact acc", ("retain", "fact_accuracy")),
    ("retain ROUGE-L", ("retain", "rouge_l_recall")),
    ("holdout ROUGE-L", ("holdout", "rouge_l_recall")),
    ("holdout fact acc", ("holdout", "fact_accuracy")),
    ("retain truth ratio vs answer", ("retain", "truth_ratio_vs_answer")),
    ("MIA AUC (Min-K%)", ("comparison", "mia_auc_min_k")),
    ("abs(AUC - 0.5)", ("comparison", "mia_gap_min_k")),
    ("privleak (Min-K%)", ("comparison", "privleak_min_k")),
    ("relearn: probe acc before", ("relearn", "probe_accuracy_before")),
    ("relearn: probe acc after", ("relearn", "probe_accuracy_after")),
    ("relearn recovery", ("relearn", "recovered")),
    ("forget fact EM", ("quantized", "fact_exact_match")),
    ("int8: forget fact EM", ("quantized", "int8_fact_exact_match")),
    ("4-bit: forget fact EM", ("quantized", "int4_fact_exact_match")),
    ("steps to matched forgetting", ("cost", "steps_to_matched_forgetting")),
    ("forget level at stop", ("cost", "forget_accuracy_at_stop")),
    ("target level", ("cost", "target_forget_accuracy")),
    ("retain acc at matched forgetting", ("cost", "retain_accuracy_at_matched_forgetting")),
    ("seconds", ("cost", "seconds")),
    ("trainable weights", ("cost", "trainable_parameters")),
    ("optimizer state MB", ("cost", "optimizer_state_mb")),
)

WORLD_COLUMNS = ("world utility", "world fact recall")  # only with data_prep.world_facts


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    batch_size: int,
    device: str,
    autocast: Autocast,
    relearn: RelearnSettings,
    world_split: pd.DataFrame | None = None,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Metrics of one model on forget, retain, holdout and (``data_prep.world_facts``) world
    knowledge, and its per-sample metrics. Reads only the ``evaluate`` parameters it uses, so
    comparing other methods (``evaluate.methods``) leaves its result cached."""
    on = resolve_device(device)
    summaries, samples = {}, []
    splits = {"forget": forget_split, "retain": retain_split, "holdout": holdout_split}
    if world_split is not None:
        splits["world"] = world_split
    for name, split in splits.items():
        summaries[name], per_sample = evaluate_split(
            model, tokenizer, split, name, batch_size, on, autocast
        )
        samples.append(per_sample)
    summaries["relearn"] = relearning_attack(model, tokenizer, forget_split, relearn, on, autocast)
    forget = encode_frame(tokenizer, forget_split)
    summaries["quantized"] = quantized_forgetting(model, forget, batch_size, on)
    return summaries, pd.concat(samples, ignore_index=True)


def metrics_report(**artifacts: Any) -> tuple[dict[str, Any], pd.DataFrame, str]:
    """All metrics as one JSON document, and the comparison table as CSV and Markdown.

    ``artifacts`` holds ``<model>`` (split summaries) and ``<model>_samples`` for each model,
    and ``<model>_cost`` for each unlearned one. Methods stop at the retrain model's forget
    accuracy, so the table compares them at matched forgetting (the step in its column).
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
    notes = degenerate_metrics(metrics)
    for note in notes:
        log.warning("%s", note)
    nan = float("nan")
    table = pd.DataFrame(
        [
            [float(metrics[name].get(group, {}).get(key, nan)) for _, (group, key) in TABLE_COLUMNS]
            for name in models
        ],
        index=pd.Index(models, name="model"),
        columns=[title for title, _ in TABLE_COLUMNS],
    )
    table = table.drop(columns=[c for c in WORLD_COLUMNS if table[c].isna().all()])
    markdown = _markdown(table) + "".join(f"\n- Note: {note}\n" for note in notes)
    return metrics, table.reset_index(), markdown


def _markdown(table: pd.DataFrame) -> str:
    rows = [
        f"| {table.index.name} | " + " | ".join(table.columns) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    for name, values in table.iterrows():
        rows.append(f"| {name} | " + " | ".join(f"{value:.3g}" for value in values) + " |")
    return "\n".join(rows) + "\n"
