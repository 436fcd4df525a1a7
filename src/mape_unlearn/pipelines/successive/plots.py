"""Figure of `successive`: the stop metric of each measured split, request by request."""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_successive(
    successive_unlearning: pd.DataFrame, unlearning_target: dict[str, float | None]
) -> Figure:
    """The stop metric per measured split after each successive request."""
    figure = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    metric = unlearning_target["stop_metric"]
    for split, rows in successive_unlearning.groupby("split", sort=False):
        axes.plot(rows["request"], rows[metric], marker="o", label=split)
    level = unlearning_target.get("forget_level")
    if level is not None:
        label = f"retrain forget {metric}"
        axes.axhline(level, color="grey", linestyle="--", label=label)
    axes.set(
        title="successive deletion requests",
        xlabel="request",
        ylabel=metric,
        xticks=sorted(successive_unlearning["request"].unique()),
    )
    figure.legend(loc="outside right upper")
    return figure
