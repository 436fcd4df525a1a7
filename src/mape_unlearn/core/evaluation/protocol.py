"""TOFU-style evaluation of one model on one split, and the comparisons across models.

Per split: answer NLL and token accuracy, the same on the fact tokens (teacher-forced, the
rest of the answer given), exact match, fact recall (the fact's words are in the greedy answer)
and ROUGE-L recall of greedy answers (whose text the per-sample metrics keep), answer
probability, truth ratio (perturbed vs paraphrased answers, and perturbed vs the answer itself)
and membership-inference scores per sample. Across models: forget quality (KS test of
forget-set truth ratios against the retrain model's), model utility (harmonic mean of
retain-side metrics) and MIA AUC of forget vs holdout, with privleak relative to the retrain
model (docs/method.md §6).

A classification split (a ``label`` column) has no text to generate: its exact match is the
accuracy (the predicted class is the label), its answer probability the probability of the
label, the MIA scores those of the label as a one-token answer (the loss attack and its
normalised variants; zlib over the input text), and ROUGE-L and truth ratio are NaN, as are
forget quality and model utility, which need them.

Data-parallel under a ``torch.distributed`` process group
(:mod:`~mape_unlearn.core.runtime.distributed`):
each rank scores and decodes a contiguous share of a split's rows and one gather gives every
rank all per-sample metrics in row order, so every rank returns what one process would.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import LabelBatch, QABatch, encode_frame, encode_qa
from mape_unlearn.core.evaluation import tofu_metrics as tofu
from mape_unlearn.core.evaluation.answer_scores import answer_token_logprobs, answer_token_scores
from mape_unlearn.core.evaluation.metrics import (
    greedy_answers,
    reference_answers,
    teacher_forced_summary,
)
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.distributed import gather_objects, gather_rows, local_rows
from mape_unlearn.core.runtime.models import check_fits
from mape_unlearn.core.runtime.precision import Autocast

MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")
UTILITY_METRICS = ("answer_probability", "rouge_l_recall", "truth_ratio")
# TOFU's world-facts utility: the answer's probability among the options, not on its own
WORLD_UTILITY_METRICS = ("option_probability", "rouge_l_recall", "truth_ratio")


def _perturbed_probabilities(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    rows: slice,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Length-normalised probability of every perturbed answer of ``rows``: ``[n_rows, k]``."""
    perturbed = [list(answers) for answers in frame.perturbed_answers]
    k = min(len(answers) for answers in perturbed)
    questions = [q for q in frame.question for _ in range(k)]
    answers = [a for row in perturbed for a in row[:k]]
    data = encode_qa(tokenizer, questions, answers).select(slice(rows.start * k, rows.stop * k))
    logprobs = answer_token_logprobs(model, data, batch_size, device)
    return tofu.answer_probability(logprobs).reshape(-1, k)


def _label_sample_metrics(
    frame: pd.DataFrame,
    encoded: LabelBatch,
    rows: slice,
    scores: list[dict[str, torch.Tensor]],
) -> dict[str, np.ndarray]:
    """Per-sample metrics of a classification split's ``rows`` (the module docstring)."""
    data = encoded.select(rows)
    logprobs = [s["logprob"] for s in scores]
    texts = frame.text.iloc[rows].astype(str)
    if "text_pair" in frame.columns:
        texts = texts + " " + frame.text_pair.iloc[rows].astype(str)
    nan = np.full(len(data), np.nan)
    return {
        "answer_probability": tofu.answer_probability(logprobs),
        "option_probability": nan,
        "exact_match": np.array([bool(s["hit"].all()) for s in scores], dtype=bool),
        "rouge_l_recall": nan,
        "truth_ratio": nan,
        "mia_loss": tofu.mia_loss(logprobs),
        "mia_zlib": tofu.mia_zlib(logprobs, texts.tolist()),
        "mia_min_k": tofu.mia_min_k(logprobs),
        "mia_min_k_plus_plus": tofu.mia_min_k_plus_plus(scores),
    }


def _against_perturbed(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    rows: slice,
    probability: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth ratio (paraphrase vs perturbed), truth ratio vs the answer and the answer's
    probability among the options, per row; NaN for data without perturbed answers."""
    nan = np.full(len(probability), np.nan)
    if "perturbed_answers" not in frame.columns:
        return nan, nan, nan
    perturbed = _perturbed_probabilities(model, tokenizer, frame, rows, batch_size, device)
    ratios = nan
    if "paraphrased_answer" in frame.columns:
        paraphrased = tofu.answer_probability(
            answer_token_logprobs(
                model,
                encode_frame(tokenizer, frame, answer="paraphrased_answer").select(rows),
                batch_size,
                device,
            )
        )
        ratios = tofu.truth_ratio(paraphrased, perturbed)
    return (
        ratios,
        tofu.truth_ratio(probability, perturbed),
        tofu.option_probability(probability, perturbed),
    )


def _sample_metrics(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    encoded: QABatch | LabelBatch,
    rows: slice,
    scores: list[dict[str, torch.Tensor]],
    batch_size: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """Per-sample metrics of ``frame``'s ``rows``, one array each (empty for no rows), from
    their ``scores`` (answer_token_scores) and the passes only they need.

    Whole splits are encoded, then cut (``encoded`` is ``frame``'s answers): an empty share,
    which cannot be encoded, needs no special case.
    """
    if isinstance(encoded, LabelBatch):
        return _label_sample_metrics(frame, encoded, rows, scores)
    data = encoded.select(rows)
    logprobs = [s["logprob"] for s in scores]
    reproduced = torch.tensor([bool(s["hit"].all()) for s in scores], dtype=torch.bool)
    generated = greedy_answers(model, data, batch_size, device, reproduced)
    references = reference_answers(data)
    answers = frame.answer.iloc[rows].tolist()
    probability = tofu.answer_probability(logprobs)
    ratios, ratios_vs_answer, options = _against_perturbed(
        model, tokenizer, frame, rows, probability, batch_size, device
    )
    predictions = [tokenizer.decode(ids) for ids in generated]  # batch_decode([]) is [""]
    facts = frame.fact.iloc[rows] if "fact" in frame.columns else answers
    return {
        "answer_probability": probability,
        "option_probability": options,
        "exact_match": np.array(
            [g == r for g, r in zip(generated, references, strict=True)], dtype=bool
        ),
        "fact_recall": np.array(
            [_says(p, f) for p, f in zip(predictions, facts, strict=True)], dtype=bool
        ),
        "rouge_l_recall": np.array(
            [tofu.rouge_l_recall(p, a) for p, a in zip(predictions, answers, strict=True)],
            dtype=np.float64,
        ),
        "truth_ratio": ratios,
        "truth_ratio_vs_answer": ratios_vs_answer,
        "mia_loss": tofu.mia_loss(logprobs),
        "mia_zlib": tofu.mia_zlib(logprobs, answers),
        "mia_min_k": tofu.mia_min_k(logprobs),
        "mia_min_k_plus_plus": tofu.mia_min_k_plus_plus(scores),
        "generated_answer": np.array(predictions, dtype=object),
    }


def greedy_statements(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    batch_size: int,
    device: torch.device,
) -> tuple[list[str], np.ndarray]:
    """Each row's greedy answer and whether it states the row's ``fact``."""
    data = encode_frame(tokenizer, frame)
    check_fits(model, data, "the questions")
    texts = [tokenizer.decode(ids) for ids in greedy_answers(model, data, batch_size, device)]
    return texts, np.array([_says(t, f) for t, f in zip(texts, frame.fact, strict=True)])


def _says(generated: str, fact: str) -> bool:
    """Whether a generated answer states the fact: its words, in order, on word boundaries
    (case and spacing aside, so word-level and sub-word tokenizers' decodings compare alike)."""
    words = " ".join(re.findall(r"\w+|[^\w\s]", fact.lower()))
    said = " ".join(re.findall(r"\w+|[^\w\s]", generated.lower()))
    return bool(words) and f" {words} " in f" {said} "


def _gathered(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every rank's rows of each column, in row order: one gather for all numeric columns
    (float64 carries the floats and the booleans exactly), one for the texts."""
    numeric = {name: c for name, c in columns.items() if c.dtype != object}
    table = np.stack([column.astype(np.float64) for column in numeric.values()], axis=1)
    table = gather_rows(torch.from_numpy(table)).numpy()
    gathered = {name: table[:, i].astype(c.dtype) for i, (name, c) in enumerate(numeric.items())}
    for name in columns.keys() - numeric.keys():
        gathered[name] = np.array(gather_objects(columns[name].tolist()), dtype=object)
    return {name: gathered[name] for name in columns}


def evaluate_split(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    split: str,
    batch_size: int,
    device: torch.device,
    autocast: Autocast = "off",
) -> tuple[dict[str, float], pd.DataFrame]:
    """Aggregate metrics of one split and a frame of per-sample metrics (data-parallel: see
    the module docstring), under one ``autocast`` context (core.runtime.precision)."""
    data = encode_frame(tokenizer, frame)
    check_fits(model, data, f"the {split} split")
    rows = local_rows(len(frame))
    with precision.autocast(device, autocast, model):
        scores = answer_token_scores(model, data.select(rows), batch_size, device)
        sample_metrics = _sample_metrics(
            model, tokenizer, frame, data, rows, scores, batch_size, device
        )
    metrics = _gathered(sample_metrics)
    samples = pd.DataFrame({"split": split, "person_id": frame.person_id.to_numpy(), **metrics})
    summary = {
        **teacher_forced_summary(scores, len(frame)),
        "exact_match": float(samples.exact_match.mean()),
        "rouge_l_recall": float(samples.rouge_l_recall.mean()),
        "answer_probability": float(samples.answer_probability.mean()),
        "option_probability": float(samples.option_probability.mean()),
        "truth_ratio": tofu.truth_ratio_score(metrics["truth_ratio"], split),
    }
    if "fact_recall" in samples:  # question answering: what greedy answers still say
        summary["fact_recall"] = float(samples.fact_recall.mean())
        summary["truth_ratio_vs_answer"] = tofu.truth_ratio_score(
            metrics["truth_ratio_vs_answer"], split
        )
        summary["truth_ratio_zero_share"] = _zero_share(metrics["truth_ratio"])
    return summary, samples


def _zero_share(ratios: np.ndarray) -> float:
    """Share of rows whose retain-side truth-ratio score ``max(0, 1 - R)`` is 0: the perturbed
    answers are at least as likely as the paraphrase (NaN without truth ratios)."""
    finite = ratios[np.isfinite(ratios)]
    return float(np.mean(finite >= 1.0)) if len(finite) else float("nan")


def membership_auc(samples: pd.DataFrame) -> dict[str, float]:
    """AUC of each attack separating forget (members) from holdout (non-members)."""
    forget, holdout = samples[samples.split == "forget"], samples[samples.split == "holdout"]
    if forget.empty or holdout.empty:
        return {}
    return {
        attack: tofu.auc(forget[f"mia_{attack}"].to_numpy(), holdout[f"mia_{attack}"].to_numpy())
        for attack in MIA_ATTACKS
    }


def compare_to_retrain(
    summaries: dict[str, dict[str, dict[str, float]]],
    samples: dict[str, pd.DataFrame],
    reference: str = "retrain",
) -> dict[str, dict[str, float]]:
    """Forget quality, model utility and MIA per model, relative to the ``reference`` model.

    Without a reference model (``train.retrain: false``) forget quality and privleak are NaN;
    the MIA AUC of forget vs holdout people is then the privacy reference.
    """
    if reference in samples:
        reference_ratios = samples[reference].query("split == 'forget'").truth_ratio.to_numpy()
        reference_auc = membership_auc(samples[reference])
    else:
        reference_ratios, reference_auc = np.full(1, np.nan), {}
    comparison = {}
    for model, frame in samples.items():
        aucs = membership_auc(frame)
        retain = [summaries[model]["retain"][metric] for metric in UTILITY_METRICS]
        world = [
            summaries[model]["world"][m]
            for m in WORLD_UTILITY_METRICS
            if "world" in summaries[model]
        ]
        comparison[model] = {
            "forget_quality": tofu.forget_quality(  # NaN without truth ratios
                frame.query("split == 'forget'").truth_ratio.to_numpy(), reference_ratios
            ),
            "model_utility": _utility(retain + world),
            "world_utility": _utility(world),
            **{f"mia_auc_{attack}": value for attack, value in aucs.items()},
            **{f"mia_gap_{attack}": abs(value - 0.5) for attack, value in aucs.items()},
            **{
                f"privleak_{attack}": tofu.privleak(value, reference_auc[attack])
                for attack, value in aucs.items()
                if attack in reference_auc
            },
        }
    return comparison


def _utility(metrics: list[float]) -> float:
    """TOFU's model utility over ``metrics``: NaN when there are none, or one is NaN (the truth
    ratio without perturbed answers)."""
    if not metrics or np.isnan(metrics).any():
        return float("nan")
    return tofu.harmonic_mean(metrics)


def degenerate_metrics(metrics: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Why a headline figure says nothing, in words, for the log and the report.

    ``metrics``: per model, its split summaries and ``comparison``. Checked: the original's
    retain truth-ratio score is 0 on most rows (its perturbed answers are worded closer to the
    answers than the paraphrases are, so ``max(0, 1 - R)`` is 0 whatever the model knows);
    model utility 0 or NaN for every model; forget quality NaN for lack of a retrain model.
    """
    notes = []
    original = metrics.get("original", {}).get("retain", {})
    zero = original.get("truth_ratio_zero_share", float("nan"))
    if zero > 0.5:
        notes.append(
            f"the original model's retain truth-ratio score is 0 on {zero:.0%} of rows: its "
            "perturbed answers are at least as likely as the paraphrases, so the truth ratio "
            "(and model utility, which includes it) cannot tell models apart on this data; "
            "the truth ratio against the answer itself ('retain truth ratio vs answer': "
            f"{original.get('truth_ratio_vs_answer', float('nan')):.3g} for the original) does"
        )
    utility = [m.get("comparison", {}).get("model_utility", np.nan) for m in metrics.values()]
    if utility and all(np.isnan(u) or u == 0 for u in utility):
        notes.append(
            "model utility is 0 or NaN for every model: it is the harmonic mean of answer "
            "probability, ROUGE-L and the truth-ratio score on retain, and one of them is 0 or "
            "NaN (without paraphrased or perturbed answers the truth ratio is NaN)"
        )
    quality = [m.get("comparison", {}).get("forget_quality", np.nan) for m in metrics.values()]
    if "retrain" not in metrics and quality:
        notes.append(
            "forget quality is NaN: it compares with a retrain model, and none was trained "
            "(train.retrain: false); the MIA AUC of forget vs holdout people (0.5: "
            "indistinguishable) is the privacy reference"
        )
    return notes
