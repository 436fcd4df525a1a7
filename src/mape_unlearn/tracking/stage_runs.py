"""One nested MLflow run per stage under the parent run of a ``kedro run``.

The runs are written with ``MlflowClient`` and explicit run ids, not with the fluent active-run
stack: kedro-mlflow re-enters its parent run with ``mlflow.start_run(run_id=...)`` before
every node and would fight a fluent nested run.

A stage run is created when the stage's first node starts (so it shows as running in the UI)
and is completed after the pipeline: parameters, tags, metrics, and, when the stage ran,
artifacts. A stage none of whose nodes ran in this session gets a run too, tagged
``cache=reused`` with ``reused_from`` = the stage run that produced its artifacts, so the
lineage is complete even when nothing ran.

Runs are named by what tells them apart (``naming``), and the model release of the stage that
makes it is registered in the MLflow model registry (``registry``).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import mlflow
import pandas as pd
from kedro.io import CatalogProtocol
from kedro.pipeline import Node, Pipeline
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from mape_unlearn.caching.fingerprint import jsonable
from mape_unlearn.caching.manifest import CacheManifest
from mape_unlearn.caching.runner import MANIFEST_DATASET, artifact_path
from mape_unlearn.tracking.git import UNKNOWN, git_commit
from mape_unlearn.tracking.lineage import (
    CACHE_TAG,
    SESSION_TAG,
    STAGE_TAG,
    StageLineage,
    producing_runs,
    stage_lineage,
    stage_of,
)
from mape_unlearn.tracking.naming import RunNames
from mape_unlearn.tracking.recorded import recording, selection_summary
from mape_unlearn.tracking.registry import SHA256_TAG, registered_name, release_version
from mape_unlearn.tracking.values import MetricPoint, flat_params, metric_points

log = logging.getLogger(__name__)

_BATCH = 100  # MLflow accepts at most 100 params, 100 tags and 1000 metrics per batch


def _now_ms() -> int:
    return int(time.time() * 1000)


class StageRuns:
    """The stage runs of one ``kedro run``, nested under kedro-mlflow's run ``parent_id``."""

    def __init__(
        self,
        client: MlflowClient,
        parent_id: str,
        session_id: str,
        project_path: Path,
        stages: Sequence[str],
        names: RunNames,
    ) -> None:
        self.client = client
        self.parent_id = parent_id
        self.session_id = session_id
        self.stages = list(stages)
        self.names = names
        parent = client.get_run(parent_id)
        # kedro-mlflow names it after the pipeline unless mlflow.yml's run.name says otherwise
        self.rename_parent = parent.info.run_name == names.pipeline
        if self.rename_parent:
            client.update_run(parent_id, name=names.name(names.pipeline))
        self.experiment_id = parent.info.experiment_id
        # who and what started the run, as MLflow recorded it on the parent
        self.inherited = {
            key: parent.data.tags[key]
            for key in (MLFLOW_USER, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE)
            if key in parent.data.tags
        }
        self.commit = git_commit(project_path)
        self.runs: dict[str, str] = {}  # stage -> MLflow run id
        self.cache: dict[str, str] = {}  # stage -> "ran" or "reused"
        self.params: dict[str, str] = {}  # flat params of every stage, for the parent
        self.registered: dict[str, str] = {}  # tags naming the registered model versions
        self._ran: set[str] = set()  # nodes that ran in this session
        self._started: dict[str, float] = {}
        self._seconds: dict[str, float] = {}  # node -> wall-clock seconds
        self._ended: dict[str, int] = {}  # stage -> end of its last node (ms)
        self._lock = threading.Lock()  # nodes may run in threads (ThreadRunner)

    # ----------------------------------------------------------------- node events
    def node_started(self, node: Node) -> None:
        stage = stage_of(node, self.stages)
        with self._lock:
            self._ran.add(node.name)
            self._started[node.name] = time.perf_counter()
            if stage is not None and stage not in self.runs:
                self.runs[stage] = self._create(stage)

    def node_finished(self, node: Node) -> None:
        stage = stage_of(node, self.stages)
        with self._lock:
            self._seconds[node.name] = time.perf_counter() - self._started[node.name]
            if stage is not None:
                self._ended[stage] = _now_ms()

    # ----------------------------------------------------------------- pipeline end
    def finish(self, pipeline: Pipeline, catalog: CatalogProtocol) -> None:
        """Complete every stage run of the pipeline, ran or reused, then the parent's summary."""
        manifest = self._manifest(catalog)
        try:
            self.names = self.names.with_request(catalog)
        except Exception as error:
            log.warning("MLflow: run names without the deletion request: %r", error)
        present = [
            stage for stage in self.stages if any(stage in node.tags for node in pipeline.nodes)
        ]
        for stage in present:
            nodes = [node for node in pipeline.nodes if stage in node.tags]
            try:
                self._finish_stage(stage, nodes, catalog, manifest)
            except Exception as error:  # tracking must never fail the run
                log.warning("MLflow: recording stage %r failed: %r", stage, error)
                self._terminate(stage, RunStatus.FAILED)
        self._finish_parent(pipeline, catalog, present)

    @staticmethod
    def _manifest(catalog: CatalogProtocol) -> CacheManifest | None:
        """The caching runner's records; without them stages have no cache keys or lineage."""
        try:
            return catalog.load(MANIFEST_DATASET) if MANIFEST_DATASET in catalog else None
        except Exception as error:
            log.warning("MLflow: no cache records, so no cache keys or lineage: %r", error)
            return None

    def fail(self) -> None:
        """Mark the stage runs created so far as failed (the pipeline raised)."""
        for stage in list(self.runs):
            self._terminate(stage, RunStatus.FAILED)

    # ----------------------------------------------------------------- one stage
    def _create(self, stage: str) -> str:
        tags = {
            **self.inherited,
            MLFLOW_PARENT_RUN_ID: self.parent_id,
            STAGE_TAG: stage,
            SESSION_TAG: self.session_id,
            "git_commit": self.commit,
        }
        if self.commit != UNKNOWN:
            tags[MLFLOW_GIT_COMMIT] = self.commit
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.names.name(stage))
        return run.info.run_id

    def _terminate(self, stage: str, status: int) -> None:
        if stage not in self.runs:
            return
        try:
            self.client.set_terminated(
                self.runs[stage], RunStatus.to_string(status), self._ended.get(stage, _now_ms())
            )
        except Exception as error:
            log.warning("MLflow: closing the run of stage %r failed: %r", stage, error)

    def _finish_stage(
        self,
        stage: str,
        nodes: list[Node],
        catalog: CatalogProtocol,
        manifest: CacheManifest | None,
    ) -> None:
        ran = [node.name for node in nodes if node.name in self._ran]
        self.cache[stage] = "ran" if ran else "reused"
        if stage in self.runs:  # created when its first node started: the request is known now
            self.client.update_run(self.runs[stage], name=self.names.name(stage))
        else:
            self.runs[stage] = self._create(stage)
        run_id = self.runs[stage]
        lineage = (
            stage_lineage(nodes, manifest, self._ran, self.session_id)
            if manifest is not None
            else StageLineage()
        )
        outputs = [name for node in nodes for name in node.outputs]
        params = self._params(nodes, catalog)
        self.params.update(params)
        self._log(
            run_id,
            params=params,
            tags={**self.names.tags(stage), **self._cache_tags(stage, nodes, ran, lineage)},
            metrics=[
                *self._report_metrics(outputs, catalog),
                *self._selection_metrics(outputs, catalog),
                *(MetricPoint(f"seconds/{name}", self._seconds[name], 0) for name in ran),
            ],
        )
        self._log_dataset_inputs(run_id, outputs, catalog, manifest)
        self._register_releases(stage, run_id, outputs, catalog, manifest)
        if ran:  # a reused stage points at the artifacts of the run that produced them
            self._log_artifacts(run_id, outputs, catalog)
        self._terminate(stage, RunStatus.FINISHED)

    def _cache_tags(
        self, stage: str, nodes: list[Node], ran: list[str], lineage: StageLineage
    ) -> dict[str, str]:
        reused = [node.name for node in nodes if node.name not in ran]
        tags = {
            CACHE_TAG: self.cache[stage],
            "nodes_ran": ",".join(ran),
            "nodes_reused": ",".join(reused),
            **{f"cache_key.{name}": key for name, key in lineage.node_keys.items()},
        }
        if len(lineage.node_keys) == len(nodes):
            tags["cache_key"] = lineage.key
        sessions = {lineage.producers[name] for name in reused if name in lineage.producers}
        if sessions:
            runs = producing_runs(self.client, stage, sessions)
            tags["reused_from_session"] = ",".join(sorted(sessions))
            tags["reused_from"] = ",".join(sorted(set(runs.values()))) or UNKNOWN
        return tags

    @staticmethod
    def _params(nodes: Iterable[Node], catalog: CatalogProtocol) -> dict[str, str]:
        names = sorted(
            {name for node in nodes for name in node.inputs if name.startswith("params:")}
        )
        return flat_params(
            {name.removeprefix("params:"): jsonable(catalog.load(name)) for name in names}
        )

    @staticmethod
    def _report_metrics(
        outputs: Iterable[str], catalog: CatalogProtocol, parent: bool = False
    ) -> list[MetricPoint]:
        """The numbers of the reports among ``outputs`` whose entries declare ``metrics``
        (``parent``: those that declare ``parent_metrics``), under their declared prefixes."""
        points: list[MetricPoint] = []
        for name in outputs:
            declared = recording(catalog, name)
            if declared.metrics is None or (parent and not declared.parent_metrics):
                continue
            if catalog.exists(name):
                points.extend(metric_points(catalog.load(name), declared.metrics))
        return points

    @staticmethod
    def _selection_metrics(outputs: Iterable[str], catalog: CatalogProtocol) -> list[MetricPoint]:
        """The numbers of selected heads and filters of the outputs declared ``selection``."""
        points = []
        for name in outputs:
            if recording(catalog, name).selection and catalog.exists(name):
                summary = selection_summary(catalog.load(name))
                points += [
                    MetricPoint(k, summary[k], 0) for k in ("selected_heads", "selected_filters")
                ]
        return points

    def _log_artifacts(self, run_id: str, outputs: Iterable[str], catalog: CatalogProtocol) -> None:
        """The stage's outputs but those declared ``artifact: false`` (``recorded``): a file at
        the artifact root, a directory (a tokenizer) under its dataset name."""
        for name in outputs:
            path = artifact_path(catalog, name) if recording(catalog, name).artifact else None
            if path is None or not path.exists():
                continue
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=name)
            else:
                self.client.log_artifact(run_id, str(path))
            if recording(catalog, name).selection:
                summary = selection_summary(catalog.load(name))
                self.client.log_dict(run_id, summary, "selected_modules.json")

    def _log_dataset_inputs(
        self,
        run_id: str,
        outputs: Iterable[str],
        catalog: CatalogProtocol,
        manifest: CacheManifest | None,
    ) -> None:
        """The tables declared ``input: <context>`` (the forget and retain splits) as MLflow
        datasets (schema, profile, digest)."""
        inputs: list[DatasetInput] = []
        metrics: list[MetricPoint] = []
        for name in outputs:
            context = recording(catalog, name).input
            if context is None or not catalog.exists(name):
                continue
            frame: pd.DataFrame = catalog.load(name)
            path = artifact_path(catalog, name)
            with warnings.catch_warnings():  # MLflow's own ambiguity and pandas notices
                warnings.simplefilter("ignore")
                dataset = mlflow.data.from_pandas(
                    frame, source=str(path) if path else name, name=name
                )
                entity = dataset._to_mlflow_entity()
            tags = [InputTag("mlflow.data.context", context)]
            record = manifest.read(name) if manifest is not None else None
            if record and "digest" in record:
                tags.append(InputTag("sha256", record["digest"]))
            inputs.append(DatasetInput(entity, tags=tags))
            metrics.append(MetricPoint(f"rows/{name}", len(frame), 0))
            if "person_id" in frame:
                metrics.append(MetricPoint(f"people/{name}", frame.person_id.nunique(), 0))
        if not inputs:
            return
        for target in (run_id, self.parent_id):  # the parent too: the UI lists it per run
            self.client.log_inputs(target, datasets=inputs)
        self._log(run_id, metrics=metrics)

    def _register_releases(
        self,
        stage: str,
        run_id: str,
        outputs: Iterable[str],
        catalog: CatalogProtocol,
        manifest: CacheManifest | None,
    ) -> None:
        """Register the stage's model releases (``registry``) and tag the run with their
        versions; a failure only warns, and the stage run completes."""
        for name in outputs:
            model = registered_name(catalog, name, self.names.env)
            if model is None or not catalog.exists(name):
                continue
            try:
                tags = self._release_tags(stage, name, manifest)
                version = release_version(self.client, model, catalog, name, run_id, tags)
            except Exception as error:
                log.warning("MLflow: registering %r as model %r failed: %r", name, model, error)
                continue
            self.registered = {
                "registered_model": model,
                "registered_model_version": str(version.version),
            }
            self._log(run_id, tags=self.registered)

    def _release_tags(
        self, stage: str, name: str, manifest: CacheManifest | None
    ) -> dict[str, str]:
        """What a model version says of its release: request, method, session, SHA-256."""
        tags = {**self.names.tags(stage), SESSION_TAG: self.session_id, "git_commit": self.commit}
        record = manifest.read(name) if manifest is not None else None
        if record and "digest" in record:
            tags[SHA256_TAG] = record["digest"]
        return tags

    # ----------------------------------------------------------------- parent
    def _finish_parent(
        self, pipeline: Pipeline, catalog: CatalogProtocol, present: list[str]
    ) -> None:
        try:
            outputs = sorted(pipeline.all_outputs())
            ran = [stage for stage in present if self.cache.get(stage) == "ran"]
            # kedro-mlflow logs each parameter group of the nodes that ran as one string;
            # the flat values make the parent complete even when nothing ran
            logged = self.client.get_run(self.parent_id).data.params
            self._log(
                self.parent_id,
                params={key: value for key, value in self.params.items() if key not in logged},
                tags={
                    **self.names.tags(self.names.pipeline),
                    **self.registered,
                    SESSION_TAG: self.session_id,
                    "git_commit": self.commit,
                    "stages_ran": ",".join(ran),
                    "stages_reused": ",".join(s for s in present if s not in ran),
                },
                metrics=self._report_metrics(outputs, catalog, parent=True),
            )
            if self.rename_parent:
                self.client.update_run(self.parent_id, name=self.names.name(self.names.pipeline))
        except Exception as error:
            log.warning("MLflow: the summary of the parent run failed: %r", error)

    def _log(
        self,
        run_id: str,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metrics: Iterable[MetricPoint] = (),
    ) -> None:
        """Params, tags and metrics in as few requests as MLflow's batch limits allow."""
        timestamp = _now_ms()
        param_list = [Param(key, value) for key, value in (params or {}).items()]
        tag_list = [RunTag(key, value) for key, value in (tags or {}).items()]
        metric_list = [Metric(p.key, p.value, timestamp, p.step) for p in metrics]
        for start in range(0, max(len(param_list), len(tag_list), len(metric_list)), _BATCH):
            part = slice(start, start + _BATCH)
            self.client.log_batch(
                run_id, metrics=metric_list[part], params=param_list[part], tags=tag_list[part]
            )
