"""Where a stage's artifacts came from: its cache keys and the runs that produced them.

The caching runner writes one record per artifact with the key of the node that produced it
and the Kedro session (``run_id``) in which that node ran. Every stage run is tagged with its
Kedro session id, so the MLflow run that produced a reused artifact is the stage run tagged
with the record's session id and ``cache=ran``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from kedro.pipeline import Node
from mlflow import MlflowClient

from mape_unlearn.caching.fingerprint import sha256
from mape_unlearn.caching.manifest import CacheManifest

STAGE_TAG = "stage"
SESSION_TAG = "kedro_session_id"
CACHE_TAG = "cache"  # "ran" or "reused"


@dataclass
class StageLineage:
    """The recorded node keys of a stage and the Kedro sessions that produced its artifacts."""

    node_keys: dict[str, str] = field(default_factory=dict)  # node name -> node key
    producers: dict[str, str] = field(default_factory=dict)  # node name -> Kedro session id

    @property
    def key(self) -> str:
        """One key for the stage: it changes when any of its nodes' keys does."""
        return sha256(json.dumps(self.node_keys, sort_keys=True))


def stage_of(node: Node, stages: Iterable[str]) -> str | None:
    """The stage a node belongs to: its tag among the stage names."""
    return next((stage for stage in stages if stage in node.tags), None)


def stage_lineage(
    nodes: Iterable[Node], manifest: CacheManifest, ran: set[str], session_id: str
) -> StageLineage:
    """Keys and producers of the nodes' recorded outputs.

    A node that ran in this session (``ran``) counts only with a record written in this
    session: a stock runner (``--runner=SequentialRunner``) runs nodes without recording them,
    and the record left by an older session would name the wrong key.
    """
    lineage = StageLineage()
    for node in nodes:
        for output in node.outputs:
            record = manifest.read(output)
            if record is None or record.get("node") != node.name or not record.get("run_id"):
                continue
            if node.name in ran and record["run_id"] != session_id:
                continue
            lineage.node_keys[node.name] = record["node_key"]
            lineage.producers[node.name] = record["run_id"]
            break
    return lineage


def producing_runs(client: MlflowClient, stage: str, session_ids: Iterable[str]) -> dict[str, str]:
    """MLflow run id of the stage run that ran ``stage`` in each Kedro session, where found."""
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    found: dict[str, str] = {}
    for session_id in sorted(set(session_ids)):
        runs = client.search_runs(
            experiments,
            f"tags.{SESSION_TAG} = '{session_id}' AND tags.{STAGE_TAG} = '{stage}' "
            f"AND tags.{CACHE_TAG} = 'ran'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if runs:
            found[session_id] = runs[0].info.run_id
    return found
