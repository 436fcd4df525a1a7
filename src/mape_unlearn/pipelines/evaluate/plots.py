"""Figure of `evaluate`: the comparison table as grouped bars, one group per model."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# (label, group, key) of the bars: forgetting, utility and privacy at matched forgetting
BARS = (
    ("forget quality", "comparison", "forget_quality"),
    ("model utility", "comparison", "model_utility"),
    ("forget EM", "forget", "exact_match"),
    ("retain EM", "retain", "exact_match"),
    ("|MIA AUC - 0.5|", "comparison", "mia_gap_min_k"),
)


def plot_evaluation(evaluation_metrics: dict[str, dict[str, Any]]) -> Figure:
    """Grouped bars of the headline metrics of every model of the evaluation table."""
    models = list(evaluation_metrics)
    figure = Figure(figsize=(max(8, 1.1 * len(models)), 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(BARS)
    positions = np.arange(len(models))
    for i, (label, group, key) in enumerate(BARS):
        values = [evaluation_metrics[m][group].get(key, np.nan) for m in models]
        axes.bar(positions + (i - (len(BARS) - 1) / 2) * width, values, width, label=label)
    axes.set_xticks(positions, models, rotation=30, ha="right")
    axes.set(ylim=(0, 1.05), title="evaluation at matched forgetting")
    figure.legend(loc="outside right upper")
    return figure
