"""Paired differences to the reference method over requests, checked against hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mape_unlearn.core.evaluation.paired import (
    Comparison,
    paired_differences,
    paired_markdown,
    study_comparisons,
)

NAN = float("nan")


def _rows() -> pd.DataFrame:
    """Three requests; the retrain reference, the module mask and one other method."""
    return pd.DataFrame(
        {
            "run": [0, 0, 0, 1, 1, 1, 2, 2, 2],
            "variant": ["retrain", "mape", "other"] * 3,
            "forget_quality": [1.0, 0.5, 0.4, 1.0, 0.6, 0.9, 1.0, 0.7, 0.7],
            "mia_auc_min_k": [0.5, 0.52, 0.4, 0.6, 0.7, 0.61, 0.55, 0.55, 0.6],
            "steps_to_matched_forgetting": [NAN, 10, 15, NAN, 20, 20, NAN, NAN, 30],
        }
    )


COMPARISONS = [
    Comparison("forget_quality", "higher"),
    Comparison("mia_auc_min_k", "nearest"),
    Comparison("steps_to_matched_forgetting", "lower"),
]


def test_differences_wins_and_intervals_by_hand():
    table = paired_differences(_rows(), COMPARISONS).set_index("metric")
    assert list(table.variant) == ["other"] * 3  # neither the reference nor the retrain anchor

    # forget quality (higher): other - mape = -0.1, +0.3, 0; mape wins run 0, loses run 1
    fq = table.loc["forget_quality"]
    assert fq.runs == 3 and fq.mean_difference == pytest.approx(0.2 / 3)
    assert (fq.wins, fq.ties, fq.losses) == (1, 1, 1)
    # a resample of three runs is all run 0 (mean -0.1) or all run 1 (+0.3) with probability
    # 1/27 each, more than 2.5 %: the percentile interval is [-0.1, 0.3]
    assert (fq.ci_low, fq.ci_high) == (pytest.approx(-0.1), pytest.approx(0.3))
    assert fq.ci_low < fq.mean_difference < fq.ci_high

    # MIA AUC nearest the retrain row of the same run: distances mape 0.02, 0.1, 0 and other
    # 0.1, 0.01, 0.05; mape is nearer in runs 0 and 2
    mia = table.loc["mia_auc_min_k"]
    assert mia.mean_difference == pytest.approx((0.08 - 0.09 + 0.05) / 3)
    assert (mia.wins, mia.ties, mia.losses) == (2, 0, 1)

    # steps (lower): run 2 has no mape value, so two pairs, differences 5 and 0; the bootstrap
    # means of two runs are 0, 2.5 or 5 with probabilities 1/4, 1/2, 1/4: the interval [0, 5]
    steps = table.loc["steps_to_matched_forgetting"]
    assert steps.runs == 2 and steps.mean_difference == pytest.approx(2.5)
    assert (steps.wins, steps.ties, steps.losses) == (1, 1, 0)
    assert (steps.ci_low, steps.ci_high) == (0.0, 5.0)


def test_one_run_has_no_interval_and_equal_differences_a_point():
    one = paired_differences(_rows().query("run == 0"), COMPARISONS[:1])
    assert one.runs.item() == 1 and one.mean_difference.item() == pytest.approx(-0.1)
    assert np.isnan(one.ci_low.item()) and np.isnan(one.ci_high.item())
    assert "| forget_quality | higher | other | 1 | -0.1 | — | 1 / 0 / 0 |" in paired_markdown(one)
    # run 2: mape has no steps, so no pair; the CSV keeps the row, the Markdown leaves it out
    last = paired_differences(_rows().query("run == 2"), COMPARISONS)
    assert list(last.runs) == [1, 1, 0]
    assert "steps" not in paired_markdown(last) and paired_markdown(last).count("\n") == 2 + 2

    shifted = _rows()
    other = shifted.variant == "other"
    shifted.loc[other, "forget_quality"] = shifted.forget_quality.shift(1)[other] - 0.25
    same = paired_differences(shifted, COMPARISONS[:1]).iloc[0]
    assert same.ci_low == pytest.approx(-0.25) and same.ci_high == pytest.approx(-0.25)
    assert (same.wins, same.ties, same.losses) == (3, 0, 0)


def test_requests_keyed_by_original_and_run():
    """Two originals with the same run ids are six requests, not three repeated ones."""
    first, second = _rows().assign(original="a"), _rows().assign(original="b")
    second["forget_quality"] = second.forget_quality + np.where(second.variant == "other", 1, 0)
    rows = pd.concat([first, second], ignore_index=True)
    with pytest.raises(ValueError, match=r"keys=\['run'\]: 9 rows repeat"):
        paired_differences(rows, COMPARISONS)
    fq = paired_differences(rows, COMPARISONS, keys=["original", "run"]).iloc[0]
    assert fq.runs == 6 and fq.mean_difference == pytest.approx((0.2 + 3.2) / 6)
    assert (fq.wins, fq.ties, fq.losses) == (1, 1, 4)


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="better='most'.*higher, lower, nearest"):
        Comparison("forget_quality", "most")
    with pytest.raises(ValueError, match="reference='sa' is not a variant"):
        paired_differences(_rows(), COMPARISONS, reference="sa")
    with pytest.raises(ValueError, match="anchor='retrain'"):
        paired_differences(_rows().query("variant != 'retrain'"), COMPARISONS)
    with pytest.raises(ValueError, match=r"no column \['retain_exact_match'\]"):
        paired_differences(_rows(), [Comparison("retain_exact_match", "higher")])


def test_study_comparisons_take_the_columns_there_are():
    columns = ["run", "variant", "forget_quality", "mia_auc_min_k", "relearn_recovered"]
    columns += ["int8_fact_exact_match", "int4_fact_exact_match", "retain_exact_match"]
    chosen = study_comparisons(columns)
    assert [(c.metric, c.better) for c in chosen] == [
        ("forget_quality", "higher"),
        ("mia_auc_min_k", "nearest"),
        ("retain_exact_match", "higher"),
        ("relearn_recovered", "lower"),
        ("int8_fact_exact_match", "lower"),
        ("int4_fact_exact_match", "lower"),
    ]
