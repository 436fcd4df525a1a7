"""Names of the MLflow runs of a ``kedro run``: what tells them apart at a glance.

A run is named ``<pipeline or stage> · <environment> · req <request> · <selector>/<rule>``, e.g.
``evaluate · base · req 3f2a91 · mape/gd``. What fills them in is declared in the catalog, under
``metadata.mlflow`` (``recorded``), not known here:

- ``request: <column>`` on the deletion request's table (``forget_split``): ``req`` is the start
  of the digest of its distinct ``<column>`` values, known once the table exists;
- ``method: {selector: <name>, rule: <group>.<key>}`` on the method's product
  (``unlearned_release``): the selector, and the parameter that holds the rule; the pipeline and
  the stages of the nodes that read ``params:<group>`` carry ``<selector>/<rule>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

from mape_unlearn.caching.fingerprint import sha256
from mape_unlearn.tracking.lineage import stage_of
from mape_unlearn.tracking.recorded import recording

BASE_ENV = "base"  # the environment of a run given none (conf/base, plus conf/local)
DEFAULT_PIPELINE = "__default__"


def request_digest(ids: Iterable[Any]) -> str:
    """SHA-256 of the request's sorted distinct ids: the same people, the same digest, whatever
    the rows, their order or the other columns."""
    return sha256("\n".join(sorted({str(value) for value in ids})))


@dataclass(frozen=True)
class RunNames:
    """The names and identifying tags of one ``kedro run``'s MLflow runs."""

    pipeline: str  # kedro-mlflow's name of the parent run (run.name: null in mlflow.yml)
    env: str
    selector: str | None = None  # the method's selector, where the catalog declares one
    rule: str | None = None
    ruled: frozenset[str] = frozenset()  # the pipeline and the stages that depend on the rule
    request_table: tuple[str, str] | None = None  # (dataset, id column) declared ``request``
    request: str | None = None  # digest of the deletion request, once its table exists

    def name(self, subject: str) -> str:
        """The run name of ``subject``: the pipeline or a stage."""
        parts = [subject, self.env]
        if self.request is not None:
            parts.append(f"req {self.request[:6]}")
        if subject in self.ruled:
            parts.append(f"{self.selector}/{self.rule}")
        return " · ".join(parts)

    def tags(self, subject: str) -> dict[str, str]:
        """The same facts as tags, to search runs and model versions by."""
        tags = {"env": self.env}
        if self.request is not None:
            tags["request_digest"] = self.request
        if subject in self.ruled:
            tags.update(selector=str(self.selector), rule=str(self.rule))
        return tags

    def with_request(self, catalog: CatalogProtocol) -> RunNames:
        """These names with the request's digest, read from its table in the catalog."""
        if self.request_table is None:
            return self
        table, column = self.request_table
        if not catalog.exists(table):
            return self
        return dataclasses.replace(self, request=request_digest(catalog.load(table)[column]))


def run_names(
    run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol, stages: Iterable[str]
) -> RunNames:
    """The names of a run about to start (``run_params`` as Kedro's ``before_pipeline_run``)."""
    name = "+".join(run_params.get("pipeline_names") or [DEFAULT_PIPELINE])  # as kedro-mlflow
    names = RunNames(pipeline=name, env=run_params.get("env") or BASE_ENV)
    # the pipeline's datasets, which the runner has built anyway (building every entry of the
    # catalog would import the libraries of stages that do not run)
    declared = {dataset: recording(catalog, dataset) for dataset in sorted(pipeline.datasets())}
    tables = [(dataset, found.request) for dataset, found in declared.items() if found.request]
    methods = [found.method for found in declared.values() if found.method]
    if len(tables) > 1 or len(methods) > 1:
        raise ValueError(
            f"metadata.mlflow declares request: {tables} and method: {methods}: expected at "
            "most one of each among the pipeline's datasets"
        )
    if tables:
        names = dataclasses.replace(names, request_table=tables[0])
    if not methods:
        return names
    group, _, key = methods[0]["rule"].partition(".")
    params = f"params:{group}"
    ruled: set[str] = set()
    if params in pipeline.inputs():  # the pipeline, and the stages of the nodes after it
        downstream = [stage_of(node, stages) for node in pipeline.from_inputs(params).nodes]
        ruled = {name, *(stage for stage in downstream if stage is not None)}
    return dataclasses.replace(
        names,
        selector=methods[0]["selector"],
        rule=_parameter(catalog, params, key),
        ruled=frozenset(ruled),
    )


def _parameter(catalog: CatalogProtocol, params: str, key: str) -> str:
    """``key`` of the parameter group ``params``, held as a dict or as a typed object."""
    values = catalog.load(params) if params in catalog else {}
    value = values.get(key) if isinstance(values, Mapping) else getattr(values, key, None)
    return str(value)
