"""Paired comparison of methods over deletion requests: can the study rank them?

A study runs every method (variant) on the same requests; two methods differ on one request
by the request itself (which people, which original model) as much as by the method. The fair
comparison is therefore *paired*: per request the difference of a metric between a variant
and the reference method, then over requests its mean, a bootstrap interval of that mean
(requests resampled with replacement, percentile interval) and how often the reference did
better, the same or worse. A request is identified by ``keys`` (the run, and the original
model when a study spans several). Plain numpy and pandas (docs/evaluation.md, "How the
study ranks").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

BETTER = ("higher", "lower", "nearest")
# what comes back after the relearning attack or a quantization round trip: lower is better
ROBUSTNESS = re.compile(r"^(relearn|int\d+)_")
TIE = 1e-12  # differences this small are ties (the same count of answers, rounding aside)
COLUMNS = ["metric", "better", "variant", "runs", "mean_difference", "ci_low", "ci_high"]
COLUMNS += ["wins", "ties", "losses"]  # the reference's, against the variant


@dataclass(frozen=True)
class Comparison:
    """A metric and which value is better: ``higher``, ``lower``, or ``nearest`` the anchor
    row's value on the same request (the retrain model's, e.g. for a membership AUC)."""

    metric: str
    better: str

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(
                f"Comparison({self.metric!r}): better={self.better!r} is not allowed; "
                f"choose one of {', '.join(BETTER)}"
            )


# what the study ranks: forgetting, privacy (MIA AUC nearest the retrain model's), utility and
# speed at matched forgetting; robustness columns are added where the rows have them
STUDY_COMPARISONS = (
    Comparison("forget_quality", "higher"),
    Comparison("mia_auc_min_k", "nearest"),
    Comparison("retain_exact_match", "higher"),
    Comparison("steps_to_matched_forgetting", "lower"),
)


def study_comparisons(columns: Iterable[str]) -> list[Comparison]:
    """:data:`STUDY_COMPARISONS` whose metric is a column, then every relearning or
    quantization column (lower is better); the rest are skipped."""
    columns = list(columns)
    present = [c for c in STUDY_COMPARISONS if c.metric in columns]
    return present + [Comparison(c, "lower") for c in columns if ROBUSTNESS.match(c)]


def paired_differences(
    rows: pd.DataFrame,
    comparisons: Sequence[Comparison],
    reference: str = "mape",
    keys: Sequence[str] = ("run",),
    anchor: str = "retrain",
    draws: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per comparison and variant (neither ``reference`` nor ``anchor``): over the requests
    where both have a value, the mean of ``variant - reference`` (for ``nearest``: of their
    distances to the anchor's value), its bootstrap 95 % interval (NaN with one request) and
    the reference's wins, ties and losses by the comparison's direction."""
    _check_rows(rows, reference, keys, anchor, comparisons)
    table = []
    for comparison in comparisons:
        scores = _scores(rows, comparison, list(keys), anchor)
        sign = 1.0 if comparison.better == "higher" else -1.0
        for variant in scores.columns.drop([reference, anchor], errors="ignore"):
            both = scores[[variant, reference]].dropna()
            difference = (both[variant] - both[reference]).to_numpy()
            advantage = -sign * difference  # > 0: the reference did better
            table.append(
                {
                    "metric": comparison.metric,
                    "better": comparison.better,
                    "variant": variant,
                    "runs": len(difference),
                    "mean_difference": difference.mean() if len(difference) else np.nan,
                    **_interval(difference, draws, seed),
                    "wins": int((advantage > TIE).sum()),
                    "ties": int((np.abs(advantage) <= TIE).sum()),
                    "losses": int((advantage < -TIE).sum()),
                }
            )
    return pd.DataFrame(table, columns=COLUMNS)


def _check_rows(
    rows: pd.DataFrame,
    reference: str,
    keys: Sequence[str],
    anchor: str,
    comparisons: Sequence[Comparison],
) -> None:
    missing = [c for c in [*keys, "variant", *(c.metric for c in comparisons)] if c not in rows]
    if missing:
        raise ValueError(f"rows: no column {missing}; the columns are {list(rows.columns)}")
    variants = set(rows.variant)
    if reference not in variants:
        raise ValueError(f"reference={reference!r} is not a variant of the rows: {variants}")
    if anchor not in variants and any(c.better == "nearest" for c in comparisons):
        raise ValueError(f"anchor={anchor!r} (for 'nearest') is not a variant: {variants}")
    repeated = rows.duplicated([*keys, "variant"])
    if repeated.any():
        raise ValueError(
            f"keys={list(keys)}: {repeated.sum()} rows repeat a (request, variant); the keys "
            "must identify a request (add 'original' when the rows span several originals)"
        )


def _scores(
    rows: pd.DataFrame, comparison: Comparison, keys: list[str], anchor: str
) -> pd.DataFrame:
    """The compared value as [request, variant]: the metric, or its distance to the anchor's."""
    wide = rows.set_index([*keys, "variant"])[comparison.metric].astype(float).unstack("variant")
    if comparison.better == "nearest":
        wide = wide.sub(wide[anchor], axis=0).abs()
    return wide[pd.unique(rows.variant)]  # the rows' order of variants


def _interval(difference: np.ndarray, draws: int, seed: int) -> dict[str, float]:
    """Percentile bootstrap 95 % interval of the mean: requests drawn with replacement."""
    if len(difference) < 2:
        return {"ci_low": np.nan, "ci_high": np.nan}
    picks = np.random.default_rng(seed).integers(0, len(difference), (draws, len(difference)))
    low, high = np.percentile(difference[picks].mean(axis=1), [2.5, 97.5])
    return {"ci_low": float(low), "ci_high": float(high)}


def paired_markdown(table: pd.DataFrame, reference: str = "mape", anchor: str = "retrain") -> str:
    """The paired table for a reader: one line per metric and variant with at least one pair
    (the CSV keeps the others); ``nearest`` metrics compare distances to the anchor's value."""
    lines = [
        f"| metric | better | variant | runs | variant − {reference} | 95 % interval "
        f"| {reference} wins / ties / losses |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in table[table.runs > 0].itertuples():
        better = f"nearest {anchor} (distance)" if row.better == "nearest" else row.better
        interval = "—" if np.isnan(row.ci_low) else f"[{row.ci_low:+.3g}, {row.ci_high:+.3g}]"
        lines.append(
            f"| {row.metric} | {better} | {row.variant} | {row.runs} | "
            f"{row.mean_difference:+.3g} | {interval} | {row.wins} / {row.ties} / {row.losses} |"
        )
    return "\n".join(lines) + "\n"
