"""The released model in the MLflow model registry: which model version forgot which request.

A catalog entry whose ``metadata`` has ``mlflow: {registered_model_name: <name>}`` (the release,
``unlearned_release``, which loads as ``{"model", "tokenizer"}``) is logged as an MLflow
``transformers`` model of the stage run that made it and registered as a version of ``<name>``
(``{env}`` in it: the Kedro environment), tagged with the deletion request's digest, the
selector and rule, the Kedro session and the release's SHA-256 (its cache record).

One version per distinct release: when a version with the release's SHA-256 exists (the release
was reused from the cache, or made again byte for byte), nothing is logged or registered and the
stage run points at that version; a release without one (made before registration was set up,
or while tracking was off) is registered from the run that reuses it.
"""

from __future__ import annotations

from importlib.metadata import version as installed_version
from typing import Any

import mlflow
from huggingface_hub import ModelCard
from kedro.io import CatalogProtocol
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

from mape_unlearn.caching.runner import artifact_path
from mape_unlearn.tracking.recorded import recording

SHA256_TAG = "release_sha256"
_REQUIREMENTS = ("torch", "transformers")  # pinned as installed: nothing to infer at log time


def registered_name(catalog: CatalogProtocol, name: str, env: str) -> str | None:
    """The registered model the catalog entry of ``name`` asks to be registered as, if any."""
    template = recording(catalog, name).registered_model_name
    return template.format(env=env) if template else None


def release_version(
    client: MlflowClient,
    model_name: str,
    catalog: CatalogProtocol,
    release: str,
    run_id: str,
    tags: dict[str, str],
) -> ModelVersion:
    """The version of ``model_name`` holding the catalog's ``release``: the one tagged with the
    release's SHA-256 (in ``tags``), else a new one, logged into the run ``run_id``."""
    sha256 = tags.get(SHA256_TAG)
    if sha256 is not None:
        query = f"name = '{model_name}' AND tags.{SHA256_TAG} = '{sha256}'"
        if found := client.search_model_versions(query, max_results=1):
            return found[0]
    info = _log_release(catalog, release, run_id, _card(model_name, tags))
    _create_registered_model(client, model_name)
    return client.create_model_version(
        model_name, info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    )


def _log_release(catalog: CatalogProtocol, release: str, run_id: str, card: ModelCard) -> ModelInfo:
    """The release as an MLflow ``transformers`` model of the run ``run_id``."""
    path = artifact_path(catalog, release)
    if path is None:
        raise ValueError(f"{release!r} is not a local directory: only a local release registers")
    components = catalog.load(release)
    model = components["model"]
    model.name_or_path = str(path.resolve())  # a local directory: never looked up on the Hub
    return mlflow.transformers.log_model(
        {"model": model, "tokenizer": components["tokenizer"]},
        name=release,
        task=_task(model),
        run_id=run_id,
        model_card=card,
        pip_requirements=[f"{package}=={installed_version(package)}" for package in _REQUIREMENTS],
    )


def _task(model: Any) -> str:
    """The transformers pipeline task: MLflow cannot infer it for a model not on the Hub."""
    classifiers = set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values())
    return "text-classification" if type(model).__name__ in classifiers else "text-generation"


def _card(model_name: str, tags: dict[str, str]) -> ModelCard:
    """A model card saying what was forgotten, so the model carries it wherever it goes."""
    facts = "\n".join(f"- {key}: `{value}`" for key, value in sorted(tags.items()))
    return ModelCard(
        f"---\ntags: [machine-unlearning, mape-unlearn]\n---\n# {model_name}\n\n"
        f"A model unlearned by mape-unlearn from a deletion request.\n\n{facts}\n"
    )


def _create_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
