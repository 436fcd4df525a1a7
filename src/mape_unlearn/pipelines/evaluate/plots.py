"""Figures of `evaluate`: the table as bars, the frontier, the sweep, successive requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
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
    _retrain_level(axes, unlearning_target, vertical=False)
    axes.set(
        title="successive deletion requests",
        xlabel="request",
        ylabel=metric,
        xticks=sorted(successive_unlearning["request"].unique()),
    )
    figure.legend(loc="outside right upper")
    return figure
