"""The stages, registered by name.

Each stage's pipeline includes every stage upstream of it, so that ``kedro run --pipeline=<stage>``
works from a fresh checkout: the caching runner builds what is missing or stale, then the stage.
"""

import os
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException, OmegaConfigLoader
from kedro.pipeline import Pipeline

from mape_unlearn.params import ForgetParams, QASourceParams, TrainParams
from mape_unlearn.pipelines import (
    data_prep,
    evaluate,
    importance,
    mask_search,
    study,
    train,
    unlearn,
)

STAGES = {
    "data_prep": data_prep,
    "train": train,
    "importance": importance,
    "mask_search": mask_search,
    "unlearn": unlearn,
    "evaluate": evaluate,
}


def _parameters(conf_source: Path) -> dict[str, Any]:
    """The parameters of ``conf/base`` and of the environment named by ``KEDRO_ENV`` (default
    ``local``); ``{}`` without configuration.

    Pipelines are built before a session knows its ``--env``, so the parameters that shape them
    are read here, Kedro's dynamic-pipeline pattern (``--params`` cannot change them).
    """
    loader = OmegaConfigLoader(
        str(conf_source),
        base_env="base",
        default_run_env="local",
        env=os.environ.get("KEDRO_ENV"),
        config_patterns={"parameters": ["parameters*", "parameters*/**", "**/parameters*"]},
        merge_strategy={"parameters": "soft"},
    )
    try:
        return loader["parameters"]
    except (MissingConfigException, ValueError):
        return {}


def evaluation_shape(conf_source: Path = Path("conf")) -> dict[str, tuple[str, ...]]:
    """``evaluate.methods`` and ``sweep.methods``, which shape the `evaluate` pipeline.

    Each must name an entry of ``baselines``: an unknown method stops registration.
    """
    params = _parameters(conf_source)
    shape = {
        "methods": tuple(params.get("evaluate", {}).get("methods", ())),
        "swept": tuple(params.get("sweep", {}).get("methods", ())),
    }
    known = sorted(params.get("baselines", {}))
    for key, parameter in (("methods", "evaluate.methods"), ("swept", "sweep.methods")):
        unknown = [method for method in shape[key] if method not in known]
        if unknown:
            raise ValueError(
                f"{parameter}={list(shape[key])} is not allowed: {unknown} not in `baselines`; "
                f"expected names from {known}"
            )
    return shape


def data_sources(conf_source: Path = Path("conf")) -> dict[str, Any]:
    """Where the QA data, the deletion request and the original model come from, which shape
    `data_prep` and `train`: ``data_prep.source.kind``, ``data_prep.forget.from_file`` and
    ``train.original``.

    Their groups are validated here: a misspelt choice would otherwise build another pipeline.
    ``{}`` without configuration (the stages' defaults: the embedded default).
    """
    params = _parameters(conf_source)
    if not params:
        return {}
    data_prep = params.get("data_prep", {})
    return {
        "qa_source": QASourceParams.model_validate(data_prep.get("source")).kind,
        "forget_from_file": ForgetParams.model_validate(data_prep.get("forget")).from_file,
        "original": TrainParams.model_validate(params.get("train")).original,
    }


def study_runs(conf_source: Path = Path("conf")) -> tuple[str, ...]:
    """The runs of ``study_runs`` (one deletion request each), which shape the `study`."""
    return tuple(_parameters(conf_source).get("study_runs", {}))


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage with its upstream stages, ``__default__`` = all stages, and ``study``.

    ``study`` (the stages up to `importance`, then the study) is not part of ``__default__``:
    it unlearns every variant once per run and is run on its own.
    """
    pipelines: dict[str, Pipeline] = {}
    upstream = Pipeline([])
    sources = data_sources()
    shapes = {"data_prep": sources, "train": sources, "evaluate": evaluation_shape()}
    for name, stage in STAGES.items():
        upstream = upstream + stage.create_pipeline(**shapes.get(name, {}))
        pipelines[name] = upstream
    pipelines["__default__"] = upstream
    pipelines["study"] = pipelines["importance"] + study.create_pipeline(runs=study_runs())
    return pipelines
