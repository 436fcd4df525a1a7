"""Figures of `mask_search`: which heads and filters were selected, and how the search went.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot state, no display needed) and
saved by kedro-datasets' ``MatplotlibDataset``, so kedro-viz previews them and the tracking hook
logs them to MLflow.
"""

from __future__ import annotations

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_module_selection(module_selection: dict[str, torch.Tensor]) -> Figure:
    """Selected heads as a layers x heads map, and the number of selected filters per layer."""
    heads = module_selection["heads"].int()  # [L, H]
    filters_per_layer = module_selection["filters"].sum(dim=1)  # [L]
    layers, n_heads = heads.shape
    figure = Figure(figsize=(10, 1.5 + 0.5 * layers), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)

    left.imshow(heads.numpy(), cmap="Greens", vmin=0, vmax=1, aspect="auto")
    left.set(
        title=f"selected heads ({int(heads.sum())} of {heads.numel()})",
        xlabel="head",
        ylabel="layer",
        xticks=range(n_heads),
        yticks=range(layers),
    )

    right.barh(range(layers), filters_per_layer.numpy(), color="tab:green")
    right.set(
        title=f"selected filters per layer ({int(filters_per_layer.sum())} of "
        f"{module_selection['filters'].numel()})",
        xlabel="filters",
        ylabel="layer",
        yticks=range(layers),
        xlim=(0, module_selection["filters"].shape[1]),
    )
    right.invert_yaxis()  # layer 0 on top, as in the heat map
    return figure


def plot_search_objective(search_trace: list[dict[str, float | str]]) -> Figure:
    """The greedy objective after the warm start (sweep 0) and after each sweep."""
    sweeps = range(len(search_trace))
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for kind in ("heads", "filters"):
        axes.plot(
            sweeps, [entry[f"objective_{kind}"] for entry in search_trace], marker="o", label=kind
        )
    axes.set(title="greedy search objective J(S)", xlabel="sweep (0 = warm start)")
    axes.set_xticks(sweeps)
    axes.legend()
    return figure
