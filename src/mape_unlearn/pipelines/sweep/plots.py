"""Figure of `sweep`: utility and steps at matched forgetting against sparsity."""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_sweep(sparsity_sweep_table: pd.DataFrame) -> Figure:
    """Utility at matched forgetting and steps to reach it, against sparsity, per method."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    utility, steps = figure.subplots(1, 2)
    for method, points in sparsity_sweep_table.groupby("method", sort=False):
        utility.plot(
            points["sparsity"],
            points["retain_accuracy_at_matched_forgetting"],
            marker="o",
            label=method,
        )
        steps.plot(points["sparsity"], points["steps_to_matched_forgetting"], marker="o")
    utility.set(xlabel="sparsity", ylabel="retain accuracy at matched forgetting")
    steps.set(xlabel="sparsity", ylabel="steps to matched forgetting")
    figure.suptitle("sparsity sweep (missing point: retrain level not reached)")
    figure.legend(loc="outside right upper")
    return figure
