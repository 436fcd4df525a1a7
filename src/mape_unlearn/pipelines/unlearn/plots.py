"""Figures of `unlearn`: how the forget and retain losses moved along the unlearning steps.

Drawn on matplotlib's Agg canvas directly and saved by kedro-datasets' ``MatplotlibDataset``.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_unlearning_losses(unlearning_trace: list[dict[str, float]]) -> Figure:
    """Forget and retain loss per step, and the forget accuracy where it was measured.

    An entry may lack a value (a step stopped on a non-finite loss has none): it is left out.
    """
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    losses = figure.subplots()
    for split, colour in (("forget", "tab:red"), ("retain", "tab:blue")):
        key = f"{split}_loss"
        entries = [entry for entry in unlearning_trace if key in entry]
        losses.plot([e["step"] for e in entries], [e[key] for e in entries], colour, label=split)
    losses.set(title="unlearning", xlabel="step", ylabel="answer loss")

    checked = [entry for entry in unlearning_trace if "forget_accuracy" in entry]
    if checked:
        accuracy = losses.twinx()
        accuracy.plot(
            [entry["step"] for entry in checked],
            [entry["forget_accuracy"] for entry in checked],
            "tab:red",
            linestyle=":",
            marker=".",
            label="forget accuracy",
        )
        accuracy.set(ylabel="forget accuracy", ylim=(0, 1.05))
    handles = [line for axes in figure.axes for line in axes.get_lines()]
    figure.legend(handles=handles, loc="outside right upper")  # off the curves
    return figure
