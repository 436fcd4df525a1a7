"""Nodes of `study`: which settings make the module mask the best point on the frontier.

Each run is one deletion request (a forget-set seed) with its own retrain reference; each
variant is a selector plus overrides of ``mask_search`` and ``unlearn``, unlearned to matched
forgetting and measured there. The stages' own node functions do the work; these nodes only
vary their parameters.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core import tofu_metrics as tofu
from mape_unlearn.core.device import resolve_device
from mape_unlearn.core.encoding import encode_frame
from mape_unlearn.core.evaluation import evaluate_split, membership_auc
from mape_unlearn.core.metrics import teacher_forced_stats
from mape_unlearn.params import (
    ForgetParams,
    ImportanceParams,
    MaskSearchParams,
    SelectorParams,
    StudyParams,
    StudyRunParams,
    UnlearnParams,
)
from mape_unlearn.pipelines.data_prep.nodes import choose_forget
from mape_unlearn.pipelines.importance.nodes import mask_gradients
from mape_unlearn.pipelines.unlearn.nodes import (
    holdout_level,
    retrain_level,
    select_and_unlearn,
    trace_outcome,
)

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
    """This run's deletion request: ``data_prep.forget`` with the run's seed."""
    return choose_forget(
        training_split, forget.model_copy(update={"seed": run.forget_seed, "ids": None})
    )


def forget_mask_gradients(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    importance: ImportanceParams,
    max_samples: int | None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """This run's forget-side mask gradients of the fact tokens and of every answer token
    (variants choose one by ``importance_tokens``)."""
    return tuple(  # type: ignore[return-value]
        mask_gradients(model, tokenizer, forget_split, importance, max_samples, tokens)
        for tokens in ("fact", "answer")
    )


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
    search: MaskSearchParams,
    unlearn: UnlearnParams,
    baselines: dict[str, Any],
    study: StudyParams,
    run: StudyRunParams,
    importance: ImportanceParams,
) -> list[dict[str, Any]]:
    """Every variant unlearned on this run's request, measured at matched forgetting."""
    device = resolve_device(unlearn.device)
    reference = _forget_and_holdout(retrain_model, tokenizer, forget_split, holdout_split, unlearn)
    for variant in study.variants:  # checked before any variant runs
        kind = SelectorParams.model_validate(baselines[variant.selector]).kind
        if variant.research_every and kind != "modules":
            raise ValueError(
                f"study variant {variant.name!r}: research_every={variant.research_every} is "
                f"not allowed with selector {variant.selector!r} (kind {kind!r}): "
                "only a module search can be re-run"
            )
    retain = teacher_forced_stats(
        retrain_model, encode_frame(tokenizer, retain_split), unlearn.batch_size, device
    )
    rows = [
        {"run": run.forget_seed, "variant": "retrain", **_measures(reference, retain, reference)}
    ]
    targets: dict[tuple[str, bool, str], dict[str, Any]] = {}
    for variant in study.variants:
        variant_search = MaskSearchParams.model_validate(
            {**search.model_dump(), **variant.mask_search}
        )
        variant_unlearn = UnlearnParams.model_validate({**unlearn.model_dump(), **variant.unlearn})
        selector = SelectorParams.model_validate(baselines[variant.selector])
        stop = (
            variant_unlearn.stop_metric,
            variant_unlearn.stop_at_retrain_level,
            variant_unlearn.target,
        )
        if stop not in targets:  # the target level, measured once per stop criterion
            references = {
                "retrain": (retrain_model, forget_split),
                "holdout": (original_model, holdout_split),
            }
            targets[stop] = _target_level(
                *references[variant_unlearn.target], tokenizer, variant_unlearn
            )
        model, trace, cost = researched_unlearn(
            original_model,
            tokenizer,
            (forget_split, retain_split, training_split),
            (
                forget_fact_gradients
                if variant.importance_tokens == "fact"
                else forget_answer_gradients,
                retain_gradients,
            ),
            targets[stop],
            (variant_search, selector, variant_unlearn, importance),
            variant.research_every,
            variant.importance_tokens,
        )
        measured = _forget_and_holdout(model, tokenizer, forget_split, holdout_split, unlearn)
        retain = teacher_forced_stats(
            model, encode_frame(tokenizer, retain_split), unlearn.batch_size, device
        )
        rows.append(
            {
                "run": run.forget_seed,
                "variant": variant.name,
                **{key: cost[key] for key in cost},
                **_measures(measured, retain, reference),
                "trace": trace,
            }
        )
        log.info(
            "run %d, %s: %s steps, retain EM %.3f, forget quality %.3g",
            run.forget_seed,
            variant.name,
            cost["steps"],
            retain["exact_match"],
            rows[-1]["forget_quality"],
        )
    return rows


def _target_level(
    model: PreTrainedModel,
    split: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    unlearn: UnlearnParams,
) -> dict[str, Any]:
    """The level a variant stops at: the unlearn stage's own node for its ``unlearn.target``."""
    level = retrain_level if unlearn.target == "retrain" else holdout_level
    return level(model, tokenizer, split, unlearn)


def _measures(
    measured: dict[str, Any], retain: dict[str, float], reference: dict[str, Any]
) -> dict[str, float]:
    """One model's row of the study: forgetting, privacy and utility at its stop."""
    aucs = membership_auc(measured["samples"])
    return {
        "forget_answer_token_accuracy": measured["forget"]["answer_token_accuracy"],
        "forget_fact_accuracy": measured["forget"]["fact_accuracy"],
        "forget_exact_match": measured["forget"]["exact_match"],
        "forget_fact_recall": measured["forget"]["fact_recall"],
        "forget_quality": tofu.forget_quality(measured["ratios"], reference["ratios"]),
        "mia_auc_min_k": aucs.get("min_k", np.nan),
        "mia_gap_min_k": abs(aucs.get("min_k", np.nan) - 0.5),
        "retain_answer_token_accuracy": retain["answer_token_accuracy"],
        "retain_exact_match": retain["exact_match"],
        "holdout_answer_token_accuracy": measured["holdout"]["answer_token_accuracy"],
        "holdout_fact_accuracy": measured["holdout"]["fact_accuracy"],
    }


def researched_unlearn(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    gradients: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    target: dict[str, float | str | None],
    settings: tuple[MaskSearchParams, SelectorParams, UnlearnParams, ImportanceParams],
    research_every: int,
    forget_tokens: str = "fact",
) -> tuple[PreTrainedModel, list[dict[str, float]], dict[str, Any]]:
    """:func:`select_and_unlearn`, the mask searched again every ``research_every`` steps.

    Each segment starts from the model the last one left: its mask gradients (forget rows, and
    the same retain rows as the stored ones) are computed on that model, and unlearning goes on
    with a fresh optimiser (and, for ``npo`` or a KL term, that model as the reference) until
    the target or ``max_steps`` in all. ``research_every=0`` is a single search.
    ``forget_tokens``: the tokens the forget-side gradients score.
    """
    forget_split, retain_split, training_split = splits
    search, selector, unlearn, importance = settings
    model, trace, cost, seconds, done = original_model, [], {}, 0.0, 0
    while True:
        steps_left = unlearn.max_steps - done
        segment = unlearn.model_copy(
            update={"max_steps": min(research_every or steps_left, steps_left)}
        )
        model, part, cost = select_and_unlearn(
            model,
            tokenizer,
            forget_split,
            retain_split,
            training_split,
            gradients,
            target,
            search,
            selector,
            segment,
        )
        part = part[1:] if trace else part  # a segment's step 0 is the last one's end
        trace += [{**entry, "step": entry["step"] + done} for entry in part]
        seconds, done = seconds + cost["seconds"], trace[-1]["step"]
        if cost["reached_target"] or done >= unlearn.max_steps or "stopped_non_finite" in part[-1]:
            break
        retain_rows = len(gradients[1]["rows"])
        gradients = (
            mask_gradients(model, tokenizer, forget_split, importance, None, forget_tokens),
            mask_gradients(model, tokenizer, training_split, importance, retain_rows, "answer"),
        )
    return (
        model,
        trace,
        {
            **cost,
            "seconds": seconds,
            "steps": done,
            **trace_outcome(trace, target["forget_level"]),
        },
    )


def _forget_and_holdout(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    unlearn: UnlearnParams,
) -> dict[str, Any]:
    """TOFU metrics on forget and holdout: enough for forget quality and the MIA."""
    device = resolve_device(unlearn.device)
    result: dict[str, Any] = {}
    samples = []
    for split, frame in (("forget", forget_split), ("holdout", holdout_split)):
        result[split], per_sample = evaluate_split(
            model, tokenizer, frame, split, unlearn.batch_size, device
        )
        samples.append(per_sample)
    result["samples"] = pd.concat(samples, ignore_index=True)
    result["ratios"] = samples[0].truth_ratio.to_numpy()
    return result


def study_report(**runs: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Every (run, variant) as rows, and the mean and spread over runs per variant.

    The summary's Markdown lists variants by retain exact match at matched forgetting.
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
    return rows, summary.reset_index(), markdown
