import math
import zlib

import numpy as np
import pytest
import torch

from mape_unlearn.core.evaluation.tofu_metrics import (
    answer_probability,
    auc,
    forget_quality,
    harmonic_mean,
    mia_loss,
    mia_min_k,
    mia_min_k_plus_plus,
    mia_zlib,
    option_probability,
    privleak,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)


def test_answer_probability_is_the_length_normalised_probability():
    logprobs = [torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 1.0]))]
    assert answer_probability(logprobs) == pytest.approx([0.5, 0.5])
    assert answer_probability([np.log([0.2])]) == pytest.approx([0.2])


def test_truth_ratio_below_one_when_the_paraphrase_is_preferred_and_one_when_equal():
    ratios = truth_ratio(np.array([0.9, 0.3]), np.array([[0.1, 0.1], [0.3, 0.3]]))
    assert ratios[0] == pytest.approx(0.1 / 0.9)
    assert ratios[0] < 1
    assert ratios[1] == pytest.approx(1.0)


def test_truth_ratio_takes_the_geometric_mean_over_perturbed_answers():
    # gmean(0.1, 0.4) = 0.2, not the arithmetic 0.25
    assert truth_ratio(np.array([0.5]), np.array([[0.1, 0.4]])) == pytest.approx([0.4])


def test_truth_ratio_scores_on_hand_cases():
    ratios = np.array([0.5, 2.0, 1.0])
    # forget: min(R, 1/R) = 0.5, 0.5, 1
    assert truth_ratio_score(ratios, "forget") == pytest.approx(2.0 / 3.0)
    # retain: max(0, 1 - R) = 0.5, 0, 0
    assert truth_ratio_score(ratios, "retain") == pytest.approx(0.5 / 3.0)
    assert truth_ratio_score(np.array([0.0, 0.25]), "forget") == pytest.approx(0.125)


def test_option_probability_is_the_answers_share_of_all_options():
    shares = option_probability(np.array([0.6, 0.1]), np.array([[0.2, 0.2], [0.1, 0.8]]))
    np.testing.assert_allclose(shares, [0.6, 0.1 / 1.0])
    # a model that likes every option equally gives 1 / (k + 1)
    assert option_probability(np.array([0.3]), np.full((1, 4), 0.3))[0] == pytest.approx(0.2)


def test_forget_quality_is_one_for_identical_and_tiny_for_different_distributions():
    values = np.linspace(0.1, 0.9, 40)
    assert forget_quality(values, values.copy()) == pytest.approx(1.0)
    assert forget_quality(values, values + 5.0) < 1e-10


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("the cat sat", "the cat sat", 1.0),
        ("x y z", "a b c", 0.0),
        ("a b c d", "a c d e", 0.75),
        ("a", "a b", 0.5),
        ("a b c", "a", 1.0),  # recall ignores extra predicted words
        ("b a", "a b", 0.5),  # order matters: LCS is 1
        ("", "a b", 0.0),
        ("a b", "", 0.0),  # no reference tokens
    ],
)
def test_rouge_l_recall_on_hand_cases(prediction, reference, expected):
    assert rouge_l_recall(prediction, reference) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The Cat sat", "the cat sat", 1.0),  # lowercased
        ("She was born in Paris.", "born in paris", 1.0),  # punctuation is not a token
        ("he writes novels", "He wrote a novel", 0.5),  # "novels" stems to "novel"; not "wrote"
        ("Jane's 3 books", "jane s 3 book", 1.0),  # split on non-alphanumerics, then stemmed
    ],
)
def test_rouge_l_recall_normalises_text_as_rouge_score_does_for_tofu(
    prediction, reference, expected
):
    """TOFU's and open-unlearning's ROUGE-L: lowercased, alphanumeric tokens, Porter stems."""
    assert rouge_l_recall(prediction, reference) == pytest.approx(expected)


def test_harmonic_mean_and_its_zero_rule():
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2.0 / 3.0)
    assert harmonic_mean([0.8, 0.0, 0.9]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([])


def test_mia_loss_is_the_mean_log_prob():
    assert mia_loss([torch.tensor([-1.0, -3.0]), torch.tensor([-0.5])]) == pytest.approx(
        [-2.0, -0.5]
    )


def test_min_k_picks_the_lowest_tokens():
    logprobs = [torch.tensor([-1.0, -5.0, -2.0, -4.0, -3.0])]
    assert mia_min_k(logprobs, k=0.4) == pytest.approx([-4.5])  # lowest two: -5, -4
    assert mia_min_k(logprobs, k=0.1) == pytest.approx([-5.0])  # at least one token
    assert mia_min_k(logprobs, k=1.0) == pytest.approx([-3.0])


def test_zlib_divides_the_mean_answer_log_prob_by_the_compressed_answer_length():
    """The texts are the answers whose tokens the log-probs cover, as open-unlearning decodes
    the labelled tokens; a question in front would change the divisor, not the log-probs."""
    logprobs = [torch.tensor([-2.0, -4.0])] * 2
    repetitive, varied = "ab " * 40, "the quick brown fox jumps over the lazy dog again"
    scores = mia_zlib(logprobs, [repetitive, varied])
    assert len(zlib.compress(repetitive.encode())) < len(repetitive.encode())
    assert scores[0] == pytest.approx(-3.0 / len(zlib.compress(repetitive.encode())))
    assert scores[1] == pytest.approx(-3.0 / len(zlib.compress(varied.encode())))
    with pytest.raises(ValueError, match="2 samples but 1 answers"):
        mia_zlib(logprobs, [varied])


def test_min_k_plus_plus_normalises_then_takes_the_lowest():
    row = {
        "logprob": torch.tensor([-1.0, -2.0, -3.0]),
        "mean": torch.tensor([-1.0, -1.0, -1.0]),
        "std": torch.tensor([1.0, 2.0, 0.5]),
    }  # z = 0, -0.5, -4
    assert mia_min_k_plus_plus([row], k=0.4) == pytest.approx([-4.0])
    assert mia_min_k_plus_plus([row], k=1.0) == pytest.approx([-1.5])
    flat = {**row, "std": torch.zeros(3)}  # std floored at 1e-3
    assert mia_min_k_plus_plus([flat], k=0.4) == pytest.approx([-2000.0])


def test_auc_perfect_reversed_and_identical():
    members, nonmembers = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])
    assert auc(members, nonmembers) == 1.0
    assert auc(nonmembers, members) == 0.0
    assert auc(np.full(4, 0.7), np.full(5, 0.7)) == 0.5


def test_auc_counts_ties_half():
    # pairs: (1 vs 1) tie = 0.5, (1 vs 0) = 1, (2 vs 1) = 1, (2 vs 0) = 1 -> 3.5 / 4
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == pytest.approx(0.875)
    # pairs: (1 vs 1) 0.5, (1 vs 3) 0, (1 vs 1) 0.5 -> 1 / 3
    assert auc(np.array([1.0]), np.array([1.0, 3.0, 1.0])) == pytest.approx(1.0 / 3.0)


def test_privleak_follows_open_unlearning_sign_convention():
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)  # still memorises: strongly negative
    assert privleak(0.5, 0.5) == pytest.approx(0.0)
    assert privleak(0.25, 0.5) == pytest.approx(50.0)  # over-unlearned: positive
    assert math.isfinite(privleak(0.9, 1.0))


def test_empty_samples_are_rejected():
    with pytest.raises(ValueError, match="no answer tokens"):
        mia_loss([torch.tensor([])])
