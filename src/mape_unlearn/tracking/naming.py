"""Names of the MLflow runs of a ``kedro run``: what tells them apart at a glance.

A run is named ``<pipeline or stage> · <environment> · req <request> · <selector>/<rule>``, e.g.
``evaluate · base · req 3f2a91 · mape/gd``: ``req`` is the start of the deletion request's
digest (known once the forget split exists), and the selector and rule appear only on runs
whose results depend on the unlearning rule (``params:unlearn``), from `unlearn` on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

from mape_unlearn.caching.fingerprint import sha256
from mape_unlearn.tracking.lineage import stage_of

REQUEST_SPLIT = "forget_split"  # the deletion request: its person ids
UNLEARN_PARAMS = "params:unlearn"
SELECTOR = "mape"  # the unlearned model's weights: the module mask of `mask_search`
BASE_ENV = "base"  # the environment of a run given none (conf/base, plus conf/local)
DEFAULT_PIPELINE = "__default__"


def request_digest(forget_split: pd.DataFrame) -> str:
    """SHA-256 of the request's sorted person ids: the same people, the same digest, whatever
    the rows, their order or the other columns."""
    people = sorted(forget_split["person_id"].astype(str).unique())
    return sha256("\n".join(people))


@dataclass(frozen=True)
class RunNames:
    """The names and identifying tags of one ``kedro run``'s MLflow runs."""

    pipeline: str  # kedro-mlflow's name of the parent run (run.name: null in mlflow.yml)
    env: str
    rule: str
    ruled: frozenset[str]  # the pipeline and the stages whose results depend on the rule
    request: str | None = None  # digest of the deletion request, once the forget split exists

    def name(self, subject: str) -> str:
        """The run name of ``subject``: the pipeline or a stage."""
        parts = [subject, self.env]
        if self.request is not None:
            parts.append(f"req {self.request[:6]}")
        if subject in self.ruled:
            parts.append(f"{SELECTOR}/{self.rule}")
        return " · ".join(parts)

    def tags(self, subject: str) -> dict[str, str]:
        """The same facts as tags, to search runs and model versions by."""
        tags = {"env": self.env}
        if self.request is not None:
            tags["request_digest"] = self.request
        if subject in self.ruled:
            tags.update(selector=SELECTOR, rule=self.rule)
        return tags

    def with_request(self, catalog: CatalogProtocol) -> RunNames:
        """These names with the request's digest, read from the catalog's forget split."""
        if REQUEST_SPLIT not in catalog or not catalog.exists(REQUEST_SPLIT):
            return self
        return dataclasses.replace(self, request=request_digest(catalog.load(REQUEST_SPLIT)))


def run_names(
    run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol, stages: Iterable[str]
) -> RunNames:
    """The names of a run about to start (``run_params`` as Kedro's ``before_pipeline_run``)."""
    name = "+".join(run_params.get("pipeline_names") or [DEFAULT_PIPELINE])  # as kedro-mlflow
    ruled: set[str] = set()
    if UNLEARN_PARAMS in pipeline.inputs():  # the pipeline, and the stages of the nodes after it
        downstream = [stage_of(node, stages) for node in pipeline.from_inputs(UNLEARN_PARAMS).nodes]
        ruled = {name, *(stage for stage in downstream if stage is not None)}
    return RunNames(
        pipeline=name,
        env=run_params.get("env") or BASE_ENV,
        rule=_rule(catalog),
        ruled=frozenset(ruled),
    )


def _rule(catalog: CatalogProtocol) -> str:
    """``unlearn.rule``, whether the catalog holds the parameters as a dict or a typed object."""
    params = catalog.load(UNLEARN_PARAMS) if UNLEARN_PARAMS in catalog else {}
    rule = params.get("rule") if isinstance(params, Mapping) else getattr(params, "rule", None)
    return str(rule)
