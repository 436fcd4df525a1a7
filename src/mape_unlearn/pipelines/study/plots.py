"""Figures of `study`: where each variant lands at matched forgetting, and how it got there."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mape_unlearn.params import StudyParams

# Variants whose mean retain exact match is this far below the best are drawn at the bottom
# edge and named there: one collapsed rule must not squeeze every other point into a line.
CLIP_BELOW_BEST = 0.1


def plot_study(
    study_results: pd.DataFrame, study: StudyParams, **runs: list[dict[str, Any]]
) -> Figure:
    """Left: retain exact match against forget exact match at matched forgetting, mean and sd
    over runs per variant (up and left is better; the retrain model sits at 1 and about 0).
    Right: forget vs retain-probe accuracy along the runs of the variants without overrides
    (each selector at the configured setting, searched once), first run."""
    figure = Figure(figsize=(14, 6), layout="constrained")
    FigureCanvasAgg(figure)
    landing, trajectories = figure.subplots(1, 2, width_ratios=(3, 2))
    plain = [v.name for v in study.variants if not (v.mask_search or v.unlearn or v.research_every)]
    _landing(landing, study_results, plain)
    for row in next(iter(runs.values()), []):
        if row["variant"] not in plain:
            continue
        points = [e for e in row["trace"] if "retain_accuracy" in e]
        trajectories.plot(
            [e["forget_accuracy"] for e in points],
            [e["retain_accuracy"] for e in points],
            marker=".",
            label=row["variant"],
        )
    trajectories.invert_xaxis()
    trajectories.legend(fontsize=8)
    trajectories.set(
        title="trajectories, first run",
        xlabel="forget accuracy (stop metric; lower = more forgotten)",
        ylabel="retain probe accuracy",
    )
    return figure


def _landing(axes: Any, study_results: pd.DataFrame, plain: list[str]) -> None:
    """Each variant's mean and sd at matched forgetting; ``plain`` ones highlighted."""
    columns = ["forget_exact_match", "retain_exact_match"]
    grouped = study_results.groupby("variant", sort=False)[columns]
    means, spreads = grouped.mean(), grouped.std().fillna(0.0)
    floor = means["retain_exact_match"].max() - CLIP_BELOW_BEST
    clipped = means[means["retain_exact_match"] < floor]
    for name, row in means.drop(clipped.index).iterrows():
        highlighted = name in plain
        axes.errorbar(
            row["forget_exact_match"],
            row["retain_exact_match"],
            xerr=spreads.loc[name, "forget_exact_match"],
            yerr=spreads.loc[name, "retain_exact_match"],
            fmt="o" if highlighted else ".",
            color="C3" if highlighted else "C0",
            alpha=0.9 if highlighted else 0.5,
            capsize=2,
        )
        axes.annotate(
            name,
            (row["forget_exact_match"], row["retain_exact_match"]),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=8 if highlighted else 6,
        )
    axes.set_ylim(bottom=floor - 0.005)
    if not clipped.empty:
        names = ", ".join(f"{n} {v:.2f}" for n, v in clipped["retain_exact_match"].items())
        axes.annotate(
            f"below the axis (retain EM): {names}",
            (0.01, 0.01),
            xycoords="axes fraction",
            fontsize=7,
        )
    axes.set(
        title="at matched forgetting: mean ± sd over runs (red: selectors as configured)",
        xlabel="forget exact match (answers still reproduced; retrain ≈ 0)",
        ylabel="retain exact match",
    )
