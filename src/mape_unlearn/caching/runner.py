"""A sequential runner that skips every node whose persisted outputs are still valid.

Before running, each node gets a key: the hash of its code fingerprint, its resolved parameter
values and the keys of its inputs (an input made by an upstream node carries that node's key;
an input from outside the pipeline carries its recorded key, or its content digest). A node
is skipped when all its outputs are persisted, exist, match their recorded bytes and were
recorded under the same key; otherwise it runs, and so does everything downstream of it.
Records are written by an ``after_dataset_saved`` hook, i.e. only after an output is saved.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager, _NullPluginManager
from kedro.io import CatalogProtocol, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from pluggy import PluginManager

from mape_unlearn.caching.fingerprint import (
    artifact_digest,
    code_fingerprint,
    jsonable,
    sha256,
    value_fingerprint,
)
from mape_unlearn.caching.manifest import CacheManifest

log = logging.getLogger(__name__)

MANIFEST_DATASET = "cache_manifest"
FORCE_ENV = "MAPE_UNLEARN_FORCE_RERUN"


@dataclass
class NodePlan:
    """What the runner decided for one node, and why."""

    key: str
    code: str
    params: dict[str, Any]
    inputs: dict[str, str]
    reasons: list[str] = field(default_factory=list)

    @property
    def runs(self) -> bool:
        return bool(self.reasons)


def artifact_path(catalog: CatalogProtocol, name: str) -> Path | None:
    """The local file or directory behind a persisted dataset, when it has one."""
    dataset = catalog.get(name, fallback_to_runtime_pattern=True)
    path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
    protocol = getattr(dataset, "_protocol", "file")
    return Path(str(path)) if path is not None and protocol in ("file", "local") else None


def _is_persisted(catalog: CatalogProtocol, name: str) -> bool:
    dataset = catalog.get(name, fallback_to_runtime_pattern=True)
    return dataset is not None and not isinstance(dataset, MemoryDataset)


def _changed_leaves(before: Any, after: Any, prefix: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            leaf
            for key in sorted(set(before) | set(after))
            for leaf in _changed_leaves(before.get(key), after.get(key), f"{prefix}.{key}")
        ]
    return [] if before == after else [prefix]


class CachingRunner(SequentialRunner):
    """``SequentialRunner`` plus make-like skipping of up-to-date nodes.

    ``force=True`` (or the environment variable ``MAPE_UNLEARN_FORCE_RERUN=1``) re-runs every
    node and refreshes the records. The decisions of the last run are kept in ``self.plan``.
    """

    def __init__(self, is_async: bool = False, force: bool | str = False) -> None:
        super().__init__(is_async=is_async)
        env_force = os.environ.get(FORCE_ENV, "").lower() in ("1", "true", "yes")
        self.force = env_force or str(force).lower() in ("1", "true", "yes")
        self.plan: dict[str, NodePlan] = {}

    def _run(
        self,
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        hook_manager: PluginManager | None = None,
        run_id: str | None = None,
    ) -> None:
        if MANIFEST_DATASET not in catalog:
            log.warning("no %r in the catalog: caching is off, every node runs", MANIFEST_DATASET)
            super()._run(pipeline, catalog, hook_manager, run_id)
            return
        manifest: CacheManifest = catalog.load(MANIFEST_DATASET)
        self.plan = self._decide(pipeline, catalog, manifest)
        to_run = [node for node in pipeline.nodes if self.plan[node.name].runs]
        for node in pipeline.nodes:
            if not self.plan[node.name].runs:
                log.info("%s: skipped (cached, key %s…)", node.name, self.plan[node.name].key[:8])
        log.info(
            "cache: %d of %d nodes up to date, %d to run",
            len(pipeline.nodes) - len(to_run),
            len(pipeline.nodes),
            len(to_run),
        )
        if not to_run:
            return
        if hook_manager is None or isinstance(hook_manager, _NullPluginManager):
            hook_manager = _create_hook_manager()
        recorder = _Recorder(self.plan, catalog, manifest, run_id)
        hook_manager.register(recorder)
        try:
            super()._run(Pipeline(to_run), catalog, hook_manager, run_id)
        finally:
            hook_manager.unregister(recorder)

    def _decide(
        self, pipeline: Pipeline, catalog: CatalogProtocol, manifest: CacheManifest
    ) -> dict[str, NodePlan]:
        keys: dict[str, str] = {}  # dataset -> key of the node that makes it in this run
        running: set[str] = set()  # datasets whose producer runs in this run
        plan: dict[str, NodePlan] = {}
        for node in pipeline.nodes:  # topological order
            params = {
                name: jsonable(catalog.load(name))
                for name in node.inputs
                if name.startswith("params:") or name == "parameters"
            }
            inputs = {
                name: value_fingerprint(params[name])
                if name in params
                else keys.get(name) or self._external_key(catalog, manifest, name)
                for name in node.inputs
            }
            code = code_fingerprint(node.func)
            key = sha256(json.dumps({"code": code, "inputs": inputs}, sort_keys=True))
            entry = NodePlan(key=key, code=code, params=params, inputs=inputs)
            entry.reasons = self._reasons(node, entry, catalog, manifest, running)
            plan[node.name] = entry
            for output in node.outputs:
                keys[output] = sha256(f"{key}:{output}")
                if entry.runs:
                    running.add(output)
        return plan

    @staticmethod
    def _external_key(catalog: CatalogProtocol, manifest: CacheManifest, name: str) -> str:
        """Key of an input no node of this pipeline makes: its record's, else its content's."""
        path = artifact_path(catalog, name)
        record = manifest.read(name)
        if record is not None and manifest.matches_disk(record, path):
            return record["key"]
        if path is not None and path.exists():
            return "content:" + artifact_digest(path)
        return "missing"

    def _reasons(
        self,
        node: Node,
        entry: NodePlan,
        catalog: CatalogProtocol,
        manifest: CacheManifest,
        running: set[str],
    ) -> list[str]:
        if self.force:
            return ["forced"]
        reasons: list[str] = []
        for output in node.outputs:
            if not _is_persisted(catalog, output):
                return [f"output not persisted: {output}"]
            if not catalog.exists(output):
                return [f"output missing: {output}"]
            record = manifest.read(output)
            if record is None:
                return [f"no cache record: {output}"]
            if record.get("node_key") != entry.key:
                reasons = self._explain(record, entry)
            elif not manifest.matches_disk(record, artifact_path(catalog, output)):
                return [f"output changed on disk: {output}"]
        upstream = sorted(name for name in node.inputs if name in running)
        if upstream:
            reasons = [r for r in reasons if not r.startswith("input changed")]
            reasons.append(f"input changed: {', '.join(upstream)}")
        return reasons

    @staticmethod
    def _explain(record: dict[str, Any], entry: NodePlan) -> list[str]:
        reasons = []
        if record.get("code") != entry.code:
            reasons.append("code changed")
        old_params = record.get("params", {})
        leaves = [
            leaf
            for name in sorted(set(old_params) | set(entry.params))
            for leaf in _changed_leaves(
                old_params.get(name), entry.params.get(name), name.removeprefix("params:")
            )
        ]
        if leaves:
            reasons.append(f"params changed: {', '.join(leaves)}")
        old_inputs = record.get("inputs", {})
        changed = sorted(
            name
            for name, key in entry.inputs.items()
            if name not in entry.params and old_inputs.get(name) != key
        )
        if changed:
            reasons.append(f"input changed: {', '.join(changed)}")
        return reasons or ["key changed"]


class _Recorder:
    """Writes a cache record after each output of a planned node is saved."""

    def __init__(
        self,
        plan: dict[str, NodePlan],
        catalog: CatalogProtocol,
        manifest: CacheManifest,
        run_id: str | None,
    ) -> None:
        self.plan, self.catalog, self.manifest, self.run_id = plan, catalog, manifest, run_id

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        entry = self.plan.get(node.name)
        if entry is None or not _is_persisted(self.catalog, dataset_name):
            return
        record = {
            "dataset": dataset_name,
            "node": node.name,
            "node_key": entry.key,
            "key": sha256(f"{entry.key}:{dataset_name}"),
            "code": entry.code,
            "params": entry.params,
            "inputs": entry.inputs,
            "run_id": self.run_id,  # the Kedro session that produced it (lineage of reuse)
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.manifest.write(dataset_name, record, artifact_path(self.catalog, dataset_name))

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        entry = self.plan.get(node.name)
        if entry is not None:
            log.info("%s: ran (why: %s)", node.name, "; ".join(entry.reasons))
