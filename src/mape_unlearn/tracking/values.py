"""Nested values as MLflow params (flat strings) and metrics (numbers with steps).

MLflow keeps flat key/value params and numeric metric series; a run's parameters and reports
are nested JSON. Params are flattened with "." (as kedro-mlflow does for the parent run);
metric keys with "/", which the MLflow UI groups into sections.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from numbers import Real
from typing import Any, NamedTuple

from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

_INVALID_KEY = re.compile(r"[^\w\-. /:]")


class MetricPoint(NamedTuple):
    key: str
    value: float
    step: int


def mlflow_key(key: str) -> str:
    """``key`` with the characters MLflow refuses in param and metric names replaced."""
    return _INVALID_KEY.sub("_", key)


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Leaves of nested dicts as ``{"a.b.c": "value"}``, each cut to MLflow's length limit."""
    params: dict[str, str] = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, Mapping):
            params.update(flat_params(value, key))
        else:
            params[mlflow_key(key)] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return params


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def metric_points(value: Any, prefix: str = "") -> Iterator[MetricPoint]:
    """Every number in ``value``, keyed by its path, with a step where it is a series.

    * a number: one point at step 0;
    * a dict: its entries, under ``prefix/key``;
    * a list of numbers (a per-epoch history): the n-th value at step n, counting from 1;
    * a list of dicts (a trace): each entry's numbers at the entry's ``step`` field, or at its
      index when it has none (a search trace: 0 is the warm start, n the n-th sweep).
    Strings, booleans and None are not metrics and are skipped.
    """
    if _is_number(value):
        yield MetricPoint(mlflow_key(prefix), float(value), 0)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from metric_points(item, _join(prefix, str(name)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if _is_number(item):
                yield MetricPoint(mlflow_key(prefix), float(item), index + 1)
            elif isinstance(item, Mapping):
                step = item.get("step", index)
                step = int(step) if _is_number(step) else index
                for name, number in item.items():
                    if name != "step" and _is_number(number):
                        yield MetricPoint(mlflow_key(_join(prefix, str(name))), float(number), step)
