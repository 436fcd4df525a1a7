"""Figures of `study`: each variant's trajectory and where it lands at matched forgetting."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_study(study_results: pd.DataFrame, **runs: list[dict[str, Any]]) -> Figure:
    """Left: forget vs retain accuracy along each variant's run (first run). Right: retain
    exact match against forget quality at matched forgetting, mean over runs per variant."""
    figure = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(figure)
    trajectories, landing = figure.subplots(1, 2)
    first = next(iter(runs.values()), [])
    for row in first:
        points = [e for e in row["trace"] if "retain_accuracy" in e]
        trajectories.plot(
            [e["forget_accuracy"] for e in points],
            [e["retain_accuracy"] for e in points],
            marker=".",
            label=row["variant"],
        )
    trajectories.invert_xaxis()
    trajectories.set(
        title="trajectories (first run)",
        xlabel="forget accuracy (stop metric; lower = more forgotten)",
        ylabel="retain probe accuracy",
    )
    means = study_results.groupby("variant", sort=False)[
        ["forget_quality", "retain_exact_match"]
    ].mean()
    landing.scatter(means["forget_quality"], means["retain_exact_match"])
    for name, row in means.iterrows():
        landing.annotate(name, (row["forget_quality"], row["retain_exact_match"]), fontsize=7)
    landing.set(
        title="at matched forgetting (mean over runs)",
        xlabel="forget quality (KS p-value vs retrain; higher is better)",
        ylabel="retain exact match",
        xscale="symlog",
    )
    figure.legend(loc="outside right upper", fontsize=7)
    return figure
