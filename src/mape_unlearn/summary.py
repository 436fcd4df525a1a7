"""What a finished ``kedro run`` prints for a person: the result in 80 columns, then where it is.

Read back through the catalog from the artifacts the run left (its own or, for cached nodes,
reused ones), printed plainly to stdout, not through logging. Columns are picked by name from
``evaluation_table_csv``; a column the table does not have is left out, so the table can grow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import CatalogProtocol

from mape_unlearn.caching.runner import artifact_path

WIDTH = 80
NAME_WIDTH = 16  # "diagonal_modules"; a longer name is cut, the full table keeps it
CELL = 8  # a 7-character number and one space: 8 numeric columns fit beside the names

# (names of the column in evaluation_table_csv, two-line header of at most 7 characters each),
# in the order printed; when more are present than fit, the earlier ones win.
COLUMNS: tuple[tuple[tuple[str, ...], tuple[str, str]], ...] = (
    (("forget EM",), ("forget", "EM")),
    (("retain EM",), ("retain", "EM")),
    (("forget fact acc", "forget fact accuracy"), ("forget", "fact")),
    (("forget fact recall",), ("fact", "recall")),
    (("forget quality",), ("forget", "quality")),
    (("model utility",), ("model", "utility")),
    (("world utility",), ("world", "utility")),  # only with data_prep.world_facts
    (("MIA AUC (Min-K%)",), ("MIA AUC", "Min-K%")),
    (("steps to matched forgetting",), ("steps", "to ref.")),
)
STEP_COLUMNS = {"steps to matched forgetting"}


def _number(value: Any, integer: bool = False) -> str:
    """At most 7 characters: 3 decimals, scientific below 0.01, ``-`` for a missing value."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(value):
        return "-"
    if integer:
        return f"{value:.0f}"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def _columns(table: pd.DataFrame) -> list[tuple[str, tuple[str, str]]]:
    """The table's column for each entry of ``COLUMNS`` it has, as many as fit in 80 columns."""
    present = [
        (found[0], header)
        for names, header in COLUMNS
        for found in [[name for name in names if name in table.columns]]
        if found
    ]
    return present[: (WIDTH - NAME_WIDTH) // CELL]


def evaluation_lines(table: pd.DataFrame, target: dict[str, Any] | None) -> list[str]:
    """The key columns of every model of the evaluation table, in at most 80 columns."""
    columns = _columns(table)
    names = table["model"].astype(str) if "model" in table.columns else table.index.astype(str)
    lines = ["", "Evaluation: every method unlearned until it reached the reference forget level"]
    if target and target.get("forget_level") is not None:
        metric = str(target.get("stop_metric", "forget accuracy")).replace("_", " ")
        lines.append(f"({metric} {float(target['forget_level']):.3f}) or its step cap:")
    for row in (0, 1):
        label = "model" if row == 1 else ""
        lines.append(
            f"{label:<{NAME_WIDTH}}" + "".join(f"{h[row]:>{CELL}}" for _, h in columns).rstrip()
        )
    for position, name in enumerate(names):
        cells = "".join(
            f"{_number(table[c].iloc[position], c in STEP_COLUMNS):>{CELL}}" for c, _ in columns
        )
        lines.append(f"{name[:NAME_WIDTH]:<{NAME_WIDTH}}{cells}")
    lines.append("(steps to ref.: steps until the reference forget level; -: not reached or none)")
    return lines


def unlearning_lines(
    cost: dict[str, Any], target: dict[str, Any] | None, trace: list[dict[str, Any]] | None
) -> list[str]:
    """Steps, trainable weights and whether the forget level was reached, in a few lines."""
    steps = _number(cost.get("steps"), integer=True)
    seconds = float(cost.get("seconds", float("nan")))
    weights = cost.get("trainable_parameters")
    weights = f"{int(weights):,}" if weights is not None and not _isnan(weights) else "-"
    lines = [
        "",
        f"Unlearned: {steps} steps in {seconds:.1f} s, {weights} trainable weights "
        f"(optimizer state {float(cost.get('optimizer_state_mb', float('nan'))):.2f} MB).",
    ]
    reached = [entry for entry in trace or [] if "forget_accuracy" in entry]
    if target and target.get("forget_level") is not None:
        level = float(target["forget_level"])
        metric = str(target.get("stop_metric", "forget accuracy")).replace("_", " ")
        final = f", now {reached[-1]['forget_accuracy']:.3f}" if reached else ""
        if cost.get("reached_target"):
            lines.append(f"Forget {metric} reached the retrain level {level:.3f}{final}.")
        else:
            lines.append(
                f"Forget {metric} did not reach the retrain level {level:.3f}{final}: "
                "raise unlearn.max_steps or unlearn.lr."
            )
    return lines


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _load(catalog: CatalogProtocol, name: str) -> Any:
    """The dataset's data, or ``None`` when the catalog has no such entry or nothing was saved."""
    if name not in catalog or not catalog.exists(name):
        return None
    return catalog.load(name)


def _shown(path: Path | None, root: Path) -> str:
    if path is None:
        return "-"
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def location_lines(
    catalog: CatalogProtocol, outputs: Iterable[str], root: Path, mlflow_run: str | None
) -> list[str]:
    """Where the full table, the figures, the released model and the MLflow run are."""
    outputs = set(outputs)
    lines = [""]
    if "evaluation_table" in outputs:
        table = artifact_path(catalog, "evaluation_table")
        csv = artifact_path(catalog, "evaluation_table_csv")
        both = f"{_shown(table, root)} (and .csv)" if csv else _shown(table, root)
        lines.append(f"Full table:     {both}")
    figures = sorted(
        path
        for name in outputs
        if name in catalog and name.endswith("_plot")
        for path in [artifact_path(catalog, name)]
        if path is not None and path.exists()
    )
    if figures:
        folders = sorted({_shown(path.parent, root) for path in figures})
        lines.append(f"Figures:        {len(figures)} PNG files in {', '.join(folders)}/")
    if "unlearned_release" in outputs:
        release = artifact_path(catalog, "unlearned_release")
        lines.append(f"Released model: {_shown(release, root)}/ (model and tokenizer)")
    if mlflow_run:
        lines.append(f"MLflow run:     {mlflow_run}")
    return lines if len(lines) > 1 else []


def summary_lines(
    catalog: CatalogProtocol, outputs: Iterable[str], root: Path, mlflow_run: str | None
) -> list[str]:
    """Everything printed after a run whose pipeline produced ``outputs``."""
    outputs = set(outputs)
    target = _load(catalog, "unlearning_target") if "unlearning_target" in outputs else None
    lines: list[str] = []
    table = _load(catalog, "evaluation_table_csv") if "evaluation_table_csv" in outputs else None
    if table is not None:
        lines += evaluation_lines(table, target)
    elif "unlearning_cost" in outputs:
        cost = _load(catalog, "unlearning_cost")
        if cost is not None:
            lines += unlearning_lines(cost, target, _load(catalog, "unlearning_trace"))
    return lines + location_lines(catalog, outputs, root, mlflow_run)
