"""Nodes of `evaluate`: TOFU-style metrics and the relearning attack per model, and the table."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.evaluation import compare_to_retrain, evaluate_split
from mape_unlearn.core.importance import MaskGradients
from mape_unlearn.core.relearning import relearning_attack
from mape_unlearn.core.splits import rows_not_forgotten
from mape_unlearn.core.successive import (
    Request,
    SearchSettings,
    request_people,
    successive_unlearning,
)
from mape_unlearn.params import (
    EvaluateParams,
    ImportanceParams,
    MaskSearchParams,
    SelectorParams,
    SuccessiveParams,
    SweepParams,
    UnlearnParams,
)
from mape_unlearn.pipelines.unlearn.nodes import select_and_unlearn, unlearn_settings

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
    ("relearn recovery", ("relearn", "recovered")),
    ("steps to matched forgetting", ("cost", "steps_to_matched_forgetting")),
    ("retain acc at matched forgetting", ("cost", "retain_accuracy_at_matched_forgetting")),
    ("seconds", ("cost", "seconds")),
    ("trainable weights", ("cost", "trainable_parameters")),
    ("optimizer state MB", ("cost", "optimizer_state_mb")),
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
    nan = float("nan")
    table = pd.DataFrame(
        [
            [float(metrics[name][group].get(key, nan)) for _, (group, key) in TABLE_COLUMNS]
            for name in models
        ],
        index=pd.Index(models, name="model"),
        columns=[title for title, _ in TABLE_COLUMNS],
    )
    markdown = _markdown(table)
    log.info("evaluation:\n%s", markdown)
    return metrics, table.reset_index(), markdown


def _markdown(table: pd.DataFrame) -> str:
    rows = [
        f"| {table.index.name} | " + " | ".join(table.columns) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    for name, values in table.iterrows():
        rows.append(f"| {name} | " + " | ".join(f"{value:.3g}" for value in values) + " |")
    return "\n".join(rows) + "\n"


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


def successive_requests(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    training_split: pd.DataFrame,
    forget_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    retain_gradients: dict[str, torch.Tensor],
    target: dict[str, float | None],
    search: MaskSearchParams,
    unlearn: UnlearnParams,
    importance: ImportanceParams,
    successive: SuccessiveParams,
) -> pd.DataFrame:
    """The forget request, then ``successive.requests - 1`` more of as many people each."""
    people = training_split["person_id"]
    requests, forgotten = [], set()
    for chosen in request_people(
        training_split, forget_split, successive.requests, successive.seed
    ):
        forgotten |= set(chosen)
        gone = training_split[people.isin(forgotten)]
        requests.append(
            Request(
                forget=encode_frame(tokenizer, training_split[people.isin(chosen)]),
                retain=encode_frame(tokenizer, training_split[~people.isin(forgotten)]),
                forgotten=encode_frame(tokenizer, gone),
                retain_rows_kept=torch.tensor(
                    rows_not_forgotten(training_split, retain_gradients["rows"].tolist(), gone)
                ),
            )
        )
    rows = successive_unlearning(
        original_model,
        requests,
        encode_frame(tokenizer, holdout_split),
        MaskGradients(retain_gradients["heads"], retain_gradients["filters"]),
        SearchSettings(**search.model_dump(include=set(SearchSettings.__dataclass_fields__))),
        unlearn_settings(unlearn),
        target["forget_level"],
        importance.batch_size,
        resolve_device(unlearn.device),
    )
    return pd.DataFrame(rows)
