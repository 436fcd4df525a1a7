"""Figures of `evaluate`: the table as bars and the frontier."""

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


def _retrain_level(axes: Any, target: dict[str, float | None], vertical: bool) -> None:
    level = target.get("forget_level")
    if level is not None:
        line = axes.axvline if vertical else axes.axhline
        line(level, color="grey", linestyle="--", label=f"retrain forget {target['stop_metric']}")


def plot_frontier(unlearning_target: dict[str, float | None], **traces: list[dict]) -> Figure:
    """Forget vs retain accuracy along each method's unlearning run (docs/method.md §6.2).

    Each run starts at the original (top right) and moves left as it forgets; the higher a
    curve crosses the retrain model's forget accuracy, the more utility the method keeps at
    matched forgetting. ``traces`` maps a method name to its trace.
    """
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for method, trace in traces.items():
        points = [e for e in trace if "retain_accuracy" in e]
        axes.plot(
            [e["forget_accuracy"] for e in points],
            [e["retain_accuracy"] for e in points],
            marker=".",
            label=method,
        )
    _retrain_level(axes, unlearning_target, vertical=True)
    axes.invert_xaxis()  # forgetting grows to the right
    axes.set(
        title="forget/utility frontier",
        xlabel=f"forget {unlearning_target['stop_metric']} (lower = more forgotten)",
        ylabel=f"retain {unlearning_target['stop_metric']}",
    )
    figure.legend(loc="outside right upper")
    return figure
