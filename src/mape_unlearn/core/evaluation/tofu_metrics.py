"""TOFU / open-unlearning evaluation metrics as pure functions over numbers.

Definitions follow TOFU (Maini et al. 2024) and open-unlearning (locuslab/open-unlearning) so
that numbers are comparable with published ones; where a choice exists, the docstring says which
was taken. Per-token log-probabilities come from :mod:`mape_unlearn.core.evaluation.answer_scores`.

Membership-inference scores are oriented so that higher means "more likely a member" and
:func:`auc` treats members as the positive class: an AUC of 1 means the model ranks every
member above every non-member. (open-unlearning scores the negated quantities and labels the
forget set 0, which gives the same AUC.)
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import ks_2samp, rankdata

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer

TokenLogprobs = Sequence[torch.Tensor | np.ndarray]


@functools.cache
def _rouge_l() -> RougeScorer:
    """One scorer for every call (building it sets up the stemmer); rougeL with the Porter
    stemmer is what TOFU and open-unlearning use. Imported on first use: rouge-score imports
    nltk, 2-4 s of every `kedro` start-up otherwise, an error message's or `kedro viz`'s too."""
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


def _arrays(logprobs: TokenLogprobs) -> list[np.ndarray]:
    """Float64 1-D arrays; an empty sample has no defined score, so it is an error."""
    out = []
    for i, values in enumerate(logprobs):
        array = torch.as_tensor(values, dtype=torch.float64).detach().cpu().numpy().reshape(-1)
        if array.size == 0:
            raise ValueError(f"sample {i} has no answer tokens")
        out.append(array)
    return out


def _lowest_fraction_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ``max(1, int(len * k))`` smallest values, as Min-K% implementations count."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    count = max(1, int(len(values) * k))
    return float(np.sort(values)[:count].mean())


# --- Memorisation ---------------------------------------------------------------------------


def answer_probability(logprobs: TokenLogprobs) -> np.ndarray:
    """Per sample ``exp(mean token log-prob)``: TOFU's length-normalised answer probability.

    Length normalisation (``P(a|q)^(1/|a|)``) keeps long answers comparable with short ones.
    """
    return np.exp(np.array([a.mean() for a in _arrays(logprobs)]))


def truth_ratio(paraphrased: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """TOFU truth ratio per sample, ``R = gmean_j P(perturbed_j) / P(paraphrased)``.

    Inputs are length-normalised probabilities (:func:`answer_probability`): ``paraphrased``
    ``[n]``, ``perturbed`` ``[n, k]``. The perturbed answers are combined by their geometric mean
    (the mean of their log-probs, as TOFU and open-unlearning average the per-answer mean
    losses), and the ratio is formed in log space so tiny probabilities do not underflow.
    ``R < 1``: the model prefers the correct (paraphrased) answer; ``R = 1``: no preference.
    """
    para = np.asarray(paraphrased, dtype=np.float64)
    pert = np.asarray(perturbed, dtype=np.float64)
    if pert.ndim == 1:
        pert = pert[:, None]
    if para.ndim != 1 or pert.ndim != 2 or len(pert) != len(para):
        raise ValueError(
            f"expected paraphrased [n] and perturbed [n, k], got {para.shape}, {pert.shape}"
        )
    with np.errstate(divide="ignore"):  # a probability of 0 gives log 0 = -inf, R = 0 or inf
        log_ratio = np.log(pert).mean(axis=1) - np.log(para)
    return np.exp(log_ratio)


def option_probability(answer: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """The answer's share of the probability of all options, ``P(a) / (P(a) + sum_j P(p_j))``:
    TOFU's probability on world facts, where a multiple-choice reading is what counts.

    Inputs are length-normalised probabilities: ``answer`` ``[n]``, ``perturbed`` ``[n, k]``.
    """
    answer = np.asarray(answer, dtype=np.float64)
    total = answer + np.asarray(perturbed, dtype=np.float64).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return answer / total


def truth_ratio_score(ratios: np.ndarray, split: str) -> float:
    """The aggregate TOFU reports for a split's truth ratios.

    ``split == "forget"``: ``mean(min(R, 1/R))`` (open-unlearning's ``closer_to_1_better``) - on
    forgotten data the ideal model has no preference between true and false answers, so 1 is
    best. Any other split (retain, real authors, world facts): ``mean(max(0, 1 - R))``
    (``true_better``) - the model should prefer the true answer, so higher is better.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if split == "forget":
        with np.errstate(divide="ignore"):
            return float(np.mean(np.exp(-np.abs(np.log(r)))))  # min(R, 1/R), overflow-free
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def forget_quality(model_ratios: np.ndarray, retrain_ratios: np.ndarray) -> float:
    """TOFU forget quality: p-value of the two-sample KS test between truth-ratio distributions.

    ``model_ratios`` are the evaluated model's truth ratios on the forget set, ``retrain_ratios``
    the retrain (never saw the forget set) model's on the same set. A high p-value means the two
    distributions cannot be told apart, i.e. the model looks retrained.
    """
    return float(ks_2samp(np.asarray(model_ratios), np.asarray(retrain_ratios)).pvalue)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference``, computed by ``rouge_score`` with
    TOFU's and open-unlearning's settings so the figures are comparable with theirs.

    ``rouge_score`` lowercases, splits on anything not a letter or digit and stems (Porter);
    recall is the longest common subsequence over the reference's tokens. A reference without
    tokens scores 0.
    """
    return float(_rouge_l().score(target=reference, prediction=prediction)["rougeL"].recall)


def harmonic_mean(values: Sequence[float] | np.ndarray) -> float:
    """Harmonic mean, 0 if any value is 0: TOFU's model utility over its utility metrics.

    The harmonic mean punishes any single collapsed metric, which is why TOFU uses it.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("harmonic mean of no values")
    if np.any(v < 0) or np.any(np.isnan(v)):
        raise ValueError(f"harmonic mean needs non-negative values, got {v}")
    if np.any(v == 0):
        return 0.0
    return float(v.size / np.sum(1.0 / v))


# --- Membership inference (higher = more likely a member) ----------------------------------


def mia_loss(logprobs: TokenLogprobs) -> np.ndarray:
    """LOSS attack (Yeom et al. 2018): mean answer-token log-prob, i.e. minus the mean loss."""
    return np.array([a.mean() for a in _arrays(logprobs)])


def mia_zlib(logprobs: TokenLogprobs, answers: Sequence[str]) -> np.ndarray:
    """zlib attack (Carlini et al. 2021): mean answer-token log-prob / zlib-compressed bytes of
    the answer's text.

    ``answers`` are the texts of the tokens that ``logprobs`` cover - the answers alone, not the
    question with them: the likelihood and the compressed size must measure the same text.
    Carlini et al. divide the log-perplexity (mean token NLL) by the zlib entropy, and
    open-unlearning divides the mean answer loss by ``len(zlib.compress(text.encode()))`` of the
    decoded answer tokens; this is the same, negated so members score higher. Text that
    compresses well is predictable for reasons unrelated to training, so its likelihood counts
    for less.
    """
    arrays = _arrays(logprobs)
    if len(arrays) != len(answers):
        raise ValueError(f"got {len(arrays)} samples but {len(answers)} answers")
    sizes = [len(zlib.compress(text.encode("utf-8"))) for text in answers]
    return np.array([a.mean() / size for a, size in zip(arrays, sizes, strict=True)])


def mia_min_k(logprobs: TokenLogprobs, k: float = 0.4) -> np.ndarray:
    """Min-K% Prob (Shi et al. 2024): mean of the lowest ``k`` fraction of token log-probs.

    Members rarely contain very surprising tokens, so the worst tokens separate them best.
    At least one token is always used (``max(1, int(m * k))``, as open-unlearning counts).
    """
    return np.array([_lowest_fraction_mean(a, k) for a in _arrays(logprobs)])


def mia_min_k_plus_plus(scores: Sequence[dict[str, torch.Tensor]], k: float = 0.4) -> np.ndarray:
    """Min-K%++ (Zhang et al. 2024): per token ``(logprob - mean) / std``, then Min-K% of those.

    ``scores`` are rows of
    :func:`~mape_unlearn.core.evaluation.answer_scores.answer_token_scores`. Normalising by the
    model's own next-token distribution marks tokens that sit at a local maximum of the
    likelihood. The variance is floored at 1e-6 (std at 1e-3) as in open-unlearning, so a
    near-deterministic position does not divide by zero.
    """
    out = []
    for row in scores:
        logprob, mean, std = _arrays([row["logprob"], row["mean"], row["std"]])
        out.append(_lowest_fraction_mean((logprob - mean) / np.maximum(std, 1e-3), k))
    return np.array(out)


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of telling members (positive) from non-members by score, ties counted half.

    Computed as the Mann-Whitney U statistic over average ranks: the probability that a random
    member outscores a random non-member. 0.5 is chance; far below 0.5 is as revealing as far
    above (the attacker just flips the sign).
    """
    members = np.asarray(member_scores, dtype=np.float64).reshape(-1)
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64).reshape(-1)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("AUC needs at least one member and one non-member score")
    ranks = rankdata(np.concatenate([members, nonmembers]))  # ties get their average rank
    u = ranks[: members.size].sum() - members.size * (members.size + 1) / 2
    return float(u / (members.size * nonmembers.size))


def privleak(model_auc: float, retrain_auc: float) -> float:
    """open-unlearning's PrivLeak: relative MIA-AUC gap to the retrain model, in percent.

    Takes AUCs in this module's convention (:func:`auc`, members positive). MUSE, whose metric
    open-unlearning reproduces, reports AUC the other way round (``1 - auc``), and
    open-unlearning's ``privleak`` converts before taking
    ``(model - retrain) / retrain * 100``; so does this function, giving
    ``((1 - model_auc) - (1 - retrain_auc)) / (1 - retrain_auc) * 100``. Hence 0 is ideal,
    strongly negative (about -100 for a model that still memorises the forget set against a
    retrain AUC of 0.5) means under-unlearning - membership still leaks - and positive means
    over-unlearning. The 1e-10 in the denominator matches open-unlearning.
    """
    model_flipped, retrain_flipped = 1.0 - model_auc, 1.0 - retrain_auc
    return float((model_flipped - retrain_flipped) / (retrain_flipped + 1e-10) * 100)
