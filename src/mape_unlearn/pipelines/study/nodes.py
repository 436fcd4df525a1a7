"""Nodes of `study`: which settings make the module mask the best point on the frontier.

Each run is one deletion request (a forget-set seed) with its own retrain reference; each
variant is a selector plus overrides of ``mask_search`` and ``unlearn``, unlearned to matched
forgetting by :func:`~mape_unlearn.core.method.methods.unlearn_with_research` and measured there.
These nodes only vary the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.splits import check_retain_size, choose_forget_people
from mape_unlearn.core.evaluation import tofu_metrics as tofu
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.evaluation.paired import (
    paired_differences,
    paired_markdown,
    study_comparisons,
)
from mape_unlearn.core.evaluation.protocol import evaluate_split, membership_auc
from mape_unlearn.core.evaluation.quantization import quantized_forgetting
from mape_unlearn.core.method.importance import (
    ImportanceSettings,
    MaskGradients,
    split_mask_gradients,
)
from mape_unlearn.core.method.methods import (
    DeletionRequest,
    deletion_request,
    unlearn_with_research,
)
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.stopping import never_seen_nll, stop_level
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.device import resolve_device
from mape_unlearn.params import ForgetParams, StudyParams, StudyRunParams, StudyVariant

log = logging.getLogger(__name__)

# what the summary reports per variant (mean and sd over runs), all at matched forgetting:
# utility (retain, higher is better), forgetting (forget quality higher, forget EM and the MIA
# gap lower) and speed (steps, lower)
HEADLINE = (
    "retain_exact_match",
    "retain_answer_token_accuracy",
    "forget_quality",
    "forget_exact_match",
    "forget_fact_recall",
    "mia_auc_min_k",
    "steps_to_matched_forgetting",
    "optimizer_state_mb",
)


def draw_request(
    training_split: pd.DataFrame, forget: ForgetParams, run: StudyRunParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This run's deletion request: ``data_prep.forget``'s fraction with the run's seed."""
    forget_split, retain_split = choose_forget_people(
        training_split, forget.fraction, run.forget_seed
    )
    check_retain_size(retain_split, forget.min_retain_rows)
    return forget_split, retain_split


def forget_mask_gradients(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    importance: ImportanceSettings,
    max_samples: int | None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """This run's forget-side mask gradients of the fact tokens and of every answer token
    (variants choose one by ``importance_tokens``)."""
    fact = split_mask_gradients(model, tokenizer, forget_split, importance, max_samples, "fact")
    answer = split_mask_gradients(model, tokenizer, forget_split, importance, max_samples, "answer")
    return fact, answer


def study_variants(
    original_model: PreTrainedModel,
    retrain_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    retain_split: pd.DataFrame,
    training_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    forget_fact_gradients: dict[str, torch.Tensor],
    forget_answer_gradients: dict[str, torch.Tensor],
    retain_gradients: dict[str, torch.Tensor],
    search: SearchSettings,
    unlearn: UnlearnSettings,
    baselines: dict[str, Any],
    study: StudyParams,
    run: StudyRunParams,
    importance: ImportanceSettings,
) -> list[dict[str, Any]]:
    """Every variant unlearned on this run's request, measured at matched forgetting."""
    data = _Run(
        {"original": original_model, "retrain": retrain_model},
        tokenizer,
        {
            "forget": forget_split,
            "retain": retain_split,
            "training": training_split,
            "holdout": holdout_split,
        },
        {
            "forget_fact": forget_fact_gradients,
            "forget_answer": forget_answer_gradients,
            "retain": retain_gradients,
        },
    )
    selectors = {name: Selector(**spec) for name, spec in baselines.items()}
    for variant in study.variants:  # checked before any variant runs
        _check_variant(variant, selectors)
    reference = _forget_and_holdout(retrain_model, data, unlearn)
    rows = [{"run": run.forget_seed, "variant": "retrain", **reference["row"]}]
    for variant in study.variants:
        variant_unlearn = replace(unlearn, **variant.unlearn)
        model, trace, cost = unlearn_with_research(
            original_model,
            selectors[variant.selector],
            _request(data, variant, variant_unlearn),
            (replace(search, **variant.mask_search), variant_unlearn),
            variant.research_every,
            _regradient(data, importance, variant),
        )
        measured = _forget_and_holdout(model, data, unlearn, reference)
        row = {"run": run.forget_seed, "variant": variant.name, **cost, **measured["row"]}
        rows.append(_logged({**row, "trace": trace}))
    return rows


def _logged(row: dict[str, Any]) -> dict[str, Any]:
    log.info(
        "run %d, %s: %s steps, retain EM %.3f, forget quality %.3g",
        row["run"],
        row["variant"],
        row["steps"],
        row["retain_exact_match"],
        row["forget_quality"],
    )
    return row


@dataclass(frozen=True)
class _Run:
    """One run's models (original, retrain), splits (forget, retain, training, holdout) and
    stored mask gradients (forget_fact, forget_answer, retain), by name."""

    models: dict[str, PreTrainedModel]
    tokenizer: PreTrainedTokenizerBase
    splits: dict[str, pd.DataFrame]
    gradients: dict[str, dict[str, torch.Tensor]]
    # stop levels and never-seen NLLs measured so far, by stop criterion
    levels: dict[tuple, tuple[float, list[float]]] = field(default_factory=dict)


def _check_variant(variant: StudyVariant, baselines: dict[str, Selector]) -> None:
    kind = baselines[variant.selector].kind
    if variant.research_every and kind != "modules":
        raise ValueError(
            f"study variant {variant.name!r}: research_every={variant.research_every} is "
            f"not allowed with selector {variant.selector!r} (kind {kind!r}): "
            "only a module search can be re-run"
        )


def _request(data: _Run, variant: StudyVariant, unlearn: UnlearnSettings) -> DeletionRequest:
    """The run's request as this variant sees it: its importance tokens, its stop level."""
    key = (unlearn.target, unlearn.stop_metric, unlearn.forget_tokens, unlearn.batch_size)
    if key not in data.levels:  # measured once per stop criterion, not once per variant
        whose = {"retrain": ("retrain", "forget"), "holdout": ("original", "holdout")}
        model, split = whose[unlearn.target]
        encoded = encode_frame(data.tokenizer, data.splits[split])
        data.levels[key] = (
            stop_level(data.models[model], encoded, unlearn),
            never_seen_nll(data.models[model], encoded, unlearn).tolist(),
        )
    level, never_seen = data.levels[key]
    forget_gradients = data.gradients[f"forget_{variant.importance_tokens}"]
    stored = (forget_gradients, data.gradients["retain"], data.splits["training"])
    return deletion_request(
        data.tokenizer,
        data.splits["forget"],
        data.splits["retain"],
        level if unlearn.stop_at_retrain_level else None,
        stored,
        never_seen,
    )


def _regradient(
    data: _Run, importance: ImportanceSettings, variant: StudyVariant
) -> Callable[[torch.nn.Module], tuple[MaskGradients, MaskGradients]]:
    """The (forget, retain) mask gradients on a model being unlearned: the forget rows on the
    variant's tokens, the stored retain rows (forgotten people dropped)."""
    retain_rows = len(data.gradients["retain"]["rows"])
    tokenizer, training, forget = data.tokenizer, data.splits["training"], data.splits["forget"]

    def gradients_on(model: torch.nn.Module) -> tuple[MaskGradients, MaskGradients]:
        tokens = variant.importance_tokens
        forget_gradients = split_mask_gradients(model, tokenizer, forget, importance, None, tokens)
        retain_gradients = split_mask_gradients(
            model, tokenizer, training, importance, retain_rows, "answer"
        )
        fresh = (forget_gradients, retain_gradients, training)
        request = deletion_request(tokenizer, forget, data.splits["retain"], None, fresh)
        return request.forget_gradients, request.retain_gradients  # type: ignore[return-value]

    return gradients_on


def _forget_and_holdout(
    model: PreTrainedModel,
    data: _Run,
    unlearn: UnlearnSettings,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """TOFU metrics on forget and holdout (enough for forget quality and the MIA), retain
    accuracy and the forget facts after the quantization round trips: the model's row of the
    study, against ``reference`` (None: the model itself)."""
    device, tokenizer, splits = resolve_device(unlearn.device), data.tokenizer, data.splits
    summary: dict[str, Any] = {}
    samples = []
    for split in ("forget", "holdout"):
        summary[split], per_sample = evaluate_split(
            model, tokenizer, splits[split], split, unlearn.batch_size, device
        )
        samples.append(per_sample)
    retain = teacher_forced_stats(
        model, encode_frame(tokenizer, splits["retain"]), unlearn.batch_size, device
    )
    quantized = quantized_forgetting(
        model, encode_frame(tokenizer, splits["forget"]), unlearn.batch_size, device
    )
    ratios = samples[0].truth_ratio.to_numpy()
    aucs = membership_auc(pd.concat(samples, ignore_index=True))
    against = ratios if reference is None else reference["ratios"]
    row = {
        "forget_answer_token_accuracy": summary["forget"]["answer_token_accuracy"],
        "forget_fact_accuracy": summary["forget"]["fact_accuracy"],
        "forget_exact_match": summary["forget"]["exact_match"],
        "forget_fact_recall": summary["forget"]["fact_recall"],
        "forget_quality": tofu.forget_quality(ratios, against),
        "mia_auc_min_k": aucs.get("min_k", np.nan),
        "mia_gap_min_k": abs(aucs.get("min_k", np.nan) - 0.5),
        "retain_answer_token_accuracy": retain["answer_token_accuracy"],
        "retain_exact_match": retain["exact_match"],
        "holdout_answer_token_accuracy": summary["holdout"]["answer_token_accuracy"],
        "holdout_fact_accuracy": summary["holdout"]["fact_accuracy"],
        **{k: v for k, v in quantized.items() if k.startswith("int")},
    }
    return {"ratios": ratios, "row": row}


def study_report(
    **runs: list[dict[str, Any]],
) -> tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame, str]:
    """Every (run, variant) as rows, the mean and spread over runs per variant, and each
    variant's paired difference to the module mask over runs (core/evaluation/paired.py).

    The summary's Markdown lists variants by retain exact match at matched forgetting. A run is
    one request of one original: rows with an ``original`` column pair by it and the run.
    """
    rows = pd.DataFrame(
        [{k: v for k, v in row.items() if k != "trace"} for run in runs.values() for row in run]
    )
    grouped = rows.groupby("variant", sort=False)[list(HEADLINE)]
    summary = grouped.mean().join(grouped.std().add_suffix(" sd"))
    reached = rows.reached_target.astype(float)  # NaN for the retrain reference's row
    summary.insert(0, "reached", reached.groupby(rows.variant, sort=False).mean())
    summary.insert(0, "runs", rows.groupby("variant", sort=False).size())
    summary = summary.sort_values("retain_exact_match", ascending=False)
    lines = [
        "| variant | runs | reached | " + " | ".join(HEADLINE) + " |",
        "|---|---:|---:|" + "---:|" * len(HEADLINE),
    ]
    for name, row in summary.iterrows():
        cells = [f"{row[c]:.3g} ± {row[c + ' sd']:.2g}" for c in HEADLINE]
        lines.append(f"| {name} | {row['runs']:.0f} | {row['reached']:.2f} | " + " | ".join(cells))
    markdown = "\n".join(line if line.endswith("|") else line + " |" for line in lines) + "\n"
    log.info("study:\n%s", markdown)
    keys = [key for key in ("original", "run") if key in rows]
    paired = paired_differences(rows, study_comparisons(rows.columns), keys=keys)
    paired_table = paired_markdown(paired)
    log.info("study, paired over runs:\n%s", paired_table)
    return rows, summary.reset_index(), markdown, paired, paired_table
