"""What a stage run records besides its parameters and tags: metrics, artifacts, inputs.

Each output says it on its catalog entry, under ``metadata: {mlflow: ...}``
(conf/base/catalog.yml), beside where it is stored; a dataset-factory pattern's declaration
holds for every name it matches, with its placeholders filled in:

- ``artifact: false``: not copied into the stage run (large, and re-created from the logged
  parameters and code). Every other output with a local file or directory is copied, but
  models (``PretrainedModelDataset``), which are never copied;
- ``metrics: <prefix>``: the report's numbers become metrics, keyed under ``<prefix>/`` (``""``:
  no prefix), series with their steps (``values.metric_points``); ``parent_metrics: true``: on
  the parent run too, to compare ``kedro run``s at a glance;
- ``input: <context>``: a table logged as an MLflow dataset input with that context;
- ``registered_model_name``: a model release registered in the model registry (``registry``);
- ``selection: true``: a module selection (bool masks ``heads [L, H]``, ``filters [L, d_ff]``):
  the numbers of selected heads and filters as metrics, their indices as
  ``selected_modules.json`` beside the copied file;
- ``request: <column>``: the deletion request's table, whose distinct ``<column>`` values name
  the runs (``naming``); ``method: {selector: <name>, rule: <group>.<key>}``: the method whose
  product this is, named on the runs that depend on the parameter ``<group>.<key>``.

Outputs are looked up among the stage's own, so a stage records only what it makes, and a new
output is copied as an artifact unless its entry says otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from kedro.io import CatalogProtocol

from mape_unlearn.datasets import PretrainedModelDataset


@dataclass(frozen=True)
class Recording:
    """How one output enters MLflow: its catalog entry's ``metadata.mlflow``."""

    artifact: bool = True  # copied into the stage run that made it
    metrics: str | None = None  # its numbers as metrics under this key prefix; None: no metrics
    parent_metrics: bool = False  # those metrics on the parent run too
    input: str | None = None  # an MLflow dataset input with this context
    registered_model_name: str | None = None  # see registry.py
    selection: bool = False  # a module selection: its counts as metrics, its indices as JSON
    request: str | None = None  # the deletion request's id column (naming.py)
    method: dict[str, str] | None = None  # {selector, rule: <group>.<key>} (naming.py)


_KEYS = [field.name for field in dataclasses.fields(Recording)]


def recording(catalog: CatalogProtocol, name: str) -> Recording:
    """What the catalog entry of ``name`` declares (a model is never copied, whatever it says).

    An unknown key is refused, so that a misspelt declaration does not silently log nothing.
    """
    dataset = catalog.get(name, fallback_to_runtime_pattern=True)
    declared: dict[str, Any] = (getattr(dataset, "metadata", None) or {}).get("mlflow") or {}
    unknown = sorted(set(declared) - set(_KEYS))
    if unknown:
        raise ValueError(
            f"metadata.mlflow of the catalog entry {name!r} has {unknown}: expected keys from "
            f"{_KEYS}"
        )
    _check_method(name, declared.get("method"))
    found = Recording(**declared)
    if isinstance(dataset, PretrainedModelDataset):
        return dataclasses.replace(found, artifact=False)
    return found


def _check_method(name: str, method: Any) -> None:
    """``method`` must say the selector and the parameter of the rule, which names read."""
    if method is None:
        return
    if (
        not isinstance(method, dict)
        or set(method) != {"selector", "rule"}
        or ("." not in str(method["rule"]))
    ):
        raise ValueError(
            f"metadata.mlflow.method of the catalog entry {name!r} is {method!r}: expected "
            "{selector: <name>, rule: <parameter group>.<key>}"
        )


def selection_summary(selection: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The selected heads and filters as indices: readable without safetensors.

    ``selection``: bool masks ``heads [L, H]`` and ``filters [L, d_ff]``.
    """
    heads: torch.Tensor = selection["heads"].bool()
    filters: torch.Tensor = selection["filters"].bool()
    return {
        "heads": [[layer, head] for layer, head in heads.nonzero().tolist()],
        "filters": {
            str(layer): row.nonzero().flatten().tolist() for layer, row in enumerate(filters)
        },
        "selected_heads": int(heads.sum()),
        "selected_filters": int(filters.sum()),
        "heads_per_layer": heads.sum(dim=1).tolist(),
        "filters_per_layer": filters.sum(dim=1).tolist(),
    }
