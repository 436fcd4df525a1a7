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

    @property
    def _logger(self) -> logging.Logger:
        """Kedro's per-node and per-task lines go to ``kedro.runner.caching`` (kept quiet by
        conf/logging.yml); this runner's one line per node goes to the project's logger."""
        return logging.getLogger("kedro.runner.caching")

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
        done: dict[str, NodePlan] = {}  # the nodes run so far in this session
        logged: set[str] = set()
        codes: dict[str, str] = {}
        while True:  # in waves: a node re-run with the same bytes keeps its consumers' keys
            self.plan = self._decide(pipeline, catalog, manifest, done, codes)
            pending = [n for n in pipeline.nodes if self.plan[n.name].runs and n.name not in done]
            self._log_skipped(pipeline, logged, done, cut_off=bool(done))
            if not done:
                log.info(
                    "cache: %d of %d nodes up to date, %d to run",
                    len(pipeline.nodes) - len(pending),
                    len(pipeline.nodes),
                    len(pending),
                )
            if not pending:
                return
            if hook_manager is None or isinstance(hook_manager, _NullPluginManager):
                hook_manager = _create_hook_manager()
            wave = self._wave(pending, catalog)
            recorder = _Recorder(self.plan, catalog, manifest, run_id)
            hook_manager.register(recorder)
            try:
                super()._run(Pipeline(wave), catalog, hook_manager, run_id)
            finally:
                hook_manager.unregister(recorder)
            done.update({node.name: self.plan[node.name] for node in wave})

    def _log_skipped(
        self, pipeline: Pipeline, logged: set[str], done: dict[str, NodePlan], cut_off: bool
    ) -> None:
        for node in pipeline.nodes:
            entry = self.plan[node.name]
            if entry.runs or node.name in logged or node.name in done:
                continue
            logged.add(node.name)
            why = "inputs rebuilt with the same bytes" if cut_off else "cached"
            log.info("%s: skipped (%s, key %s…)", node.name, why, entry.key[:8])

    @staticmethod
    def _wave(pending: list[Node], catalog: CatalogProtocol) -> list[Node]:
        """The pending nodes that can run before the next re-plan: those with no input still
        to be persisted by another pending node (whose new bytes may equal the recorded)."""
        blocked: set[str] = set()
        wave = []
        for node in pending:  # topological order
            if blocked.intersection(node.inputs):
                blocked.update(node.outputs)
                continue
            wave.append(node)
            blocked.update(out for out in node.outputs if _is_persisted(catalog, out))
        return wave

    def _decide(
        self,
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        manifest: CacheManifest,
        done: dict[str, NodePlan] | None = None,
        codes: dict[str, str] | None = None,
    ) -> dict[str, NodePlan]:
        done = done or {}
        codes = {} if codes is None else codes
        keys: dict[str, str] = {}  # dataset -> its key in this run
        running: set[str] = set()  # datasets whose producer runs (or, in memory, ran) now
        plan: dict[str, NodePlan] = {}
        for node in pipeline.nodes:  # topological order
            if node.name in done:
                entry = plan[node.name] = done[node.name]
            else:
                entry = plan[node.name] = self._node_plan(node, catalog, manifest, keys, codes)
                entry.reasons = self._reasons(node, entry, catalog, manifest, running)
            for output in node.outputs:
                record = manifest.read(output) if _is_persisted(catalog, output) else None
                pending = entry.runs and node.name not in done
                if record is not None and not pending and record.get("node_key") == entry.key:
                    keys[output] = record["key"]  # kept when a re-run wrote the same bytes
                else:
                    keys[output] = sha256(f"{entry.key}:{output}")
                if pending or (node.name in done and record is None):
                    running.add(output)
        return plan

    def _node_plan(
        self,
        node: Node,
        catalog: CatalogProtocol,
        manifest: CacheManifest,
        keys: dict[str, str],
        codes: dict[str, str],
    ) -> NodePlan:
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
        if node.name not in codes:
            codes[node.name] = code_fingerprint(node.func)
        code = codes[node.name]
        key = sha256(json.dumps({"code": code, "inputs": inputs}, sort_keys=True))
        return NodePlan(key=key, code=code, params=params, inputs=inputs)

    @staticmethod
    def _external_key(catalog: CatalogProtocol, manifest: CacheManifest, name: str) -> str:
        """Key of an input no node of this pipeline makes: its record's, else its content's.

        A user's file or model directory gets an ``external`` record of its content digest
        and stat signature, so it is hashed again only when its sizes or mtimes change.
        """
        path = artifact_path(catalog, name)
        exists = path is not None and path.exists()
        record = manifest.read(name)
        if record is not None and not record.get("external"):  # made by a node, elsewhere
            if manifest.matches_disk(record, path):
                return record["key"]
            return "content:" + artifact_digest(path) if exists else "missing"
        if not exists:
            return "missing"
        return "content:" + manifest.external_digest(name, path, record)

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
        path = artifact_path(self.catalog, dataset_name)
        digest = artifact_digest(path) if path is not None and path.exists() else None
        before = self.manifest.read(dataset_name) or {}
        same_bytes = digest is not None and before.get("digest") == digest and "key" in before
        record = {
            "dataset": dataset_name,
            "node": node.name,
            "node_key": entry.key,
            # the same bytes as recorded keep their key, so their consumers stay up to date
            "key": before["key"] if same_bytes else sha256(f"{entry.key}:{dataset_name}"),
            "code": entry.code,
            "params": entry.params,
            "inputs": entry.inputs,
            "run_id": self.run_id,  # the Kedro session that produced it (lineage of reuse)
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.manifest.write(dataset_name, record, path, digest=digest)

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        entry = self.plan.get(node.name)
        if entry is not None:
            log.info("%s: ran (why: %s)", node.name, "; ".join(entry.reasons))
