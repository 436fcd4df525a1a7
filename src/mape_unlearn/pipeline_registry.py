"""The stages, registered by name.

Each stage's pipeline includes every stage upstream of it, so that ``kedro run --pipeline=<stage>``
works from a fresh checkout: the caching runner builds what is missing or stale, then the stage.
The stages form a chain up to `unlearn`; `evaluate`, `sweep` and `successive` each follow
`unlearn` and need nothing of one another.
"""

import os
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.pipeline import Pipeline

from mape_unlearn.params import EvaluateParams, ForgetParams, QASourceParams, TrainParams
from mape_unlearn.pipelines import (
    data_prep,
    evaluate,
    importance,
    mask_search,
    study,
    successive,
    sweep,
    train,
    unlearn,
)
from mape_unlearn.pipelines.unlearn.pipeline import TARGET_LEVELS as TARGETS
from mape_unlearn.settings import config_loader

STAGES = {
    "data_prep": data_prep,
    "train": train,
    "importance": importance,
    "mask_search": mask_search,
    "unlearn": unlearn,
    "evaluate": evaluate,
    "sweep": sweep,
    "successive": successive,
}
# the stage each stage builds on (its pipeline adds that stage's pipeline); none for data_prep
FOLLOWS = {
    "train": "data_prep",
    "importance": "train",
    "mask_search": "importance",
    "unlearn": "mask_search",
    "evaluate": "unlearn",
    "sweep": "unlearn",
    "successive": "unlearn",
}


def _parameters(conf_source: Path) -> dict[str, Any]:
    """The parameters of ``conf/base`` and of the environment named by ``KEDRO_ENV`` (default
    ``local``), read as a session reads them (``settings.config_loader``); ``{}`` without
    configuration.

    Pipelines are built before a session knows its ``--env``, so the parameters that shape them
    are read here, Kedro's dynamic-pipeline pattern (``--params`` cannot change them).
    """
    try:
        return config_loader(conf_source, env=os.environ.get("KEDRO_ENV"))["parameters"]
    except (MissingConfigException, ValueError):
        return {}


def evaluation_shape(conf_source: Path = Path("conf")) -> dict[str, tuple[str, ...]]:
    """``evaluate.methods`` and ``sweep.methods``, which shape `evaluate` and `sweep`.

    Each must name an entry of ``baselines``: an unknown method stops registration. The
    ``evaluate`` group is validated here, where it is read as a whole; its nodes read only the
    values they use (``evaluate.batch_size``, ``.device``, ``.relearn``).
    """
    params = _parameters(conf_source)
    if "evaluate" in params:
        EvaluateParams.model_validate(params["evaluate"])
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
    """Where the QA data, the deletion request, the original model and the stop level come
    from, which shape the stages: ``data_prep.source.kind``, ``data_prep.forget.from_file``,
    ``data_prep.world_facts``, ``train.original``, ``train.base``, ``train.retrain`` and
    ``unlearn.target``.

    Their groups are validated here: a misspelt choice would otherwise build another pipeline.
    ``{}`` without configuration (the stages' defaults: the embedded default).
    """
    params = _parameters(conf_source)
    if not params:
        return {}
    data_prep = params.get("data_prep", {})
    train = TrainParams.model_validate(params.get("train"))
    target = params.get("unlearn", {}).get("target", "retrain")
    if target not in TARGETS or (target == "retrain" and not train.retrain):
        raise ValueError(
            f"unlearn.target={target!r} is not allowed with train.retrain={train.retrain}: "
            f"expected one of {list(TARGETS)}, and holdout when no retrain model is trained"
        )
    world_facts = data_prep.get("world_facts", False)
    if world_facts not in (True, False) or (world_facts and train.original != "finetuned"):
        raise ValueError(
            f"data_prep.world_facts={world_facts!r} is not allowed with train.original="
            f"{train.original!r}: expected false, or true with a pretrained base model "
            "(train.original: finetuned), whose knowledge the world facts measure"
        )
    return {
        "qa_source": QASourceParams.model_validate(data_prep.get("source")).kind,
        "forget_from_file": ForgetParams.model_validate(data_prep.get("forget")).from_file,
        "original": train.original,
        "base": train.base,
        "world_facts": world_facts,
        "retrain": train.retrain,
        "target": target,
    }


def study_runs(conf_source: Path = Path("conf")) -> tuple[str, ...]:
    """The runs of ``study_runs`` (one deletion request each), which shape the `study`."""
    return tuple(_parameters(conf_source).get("study_runs", {}))


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage with its upstream stages, ``__default__`` = all stages, and ``study``.

    ``__default__`` includes `sweep` and `successive`: a plain ``kedro run`` reproduces every
    result of the default (``make run`` runs `unlearn` and `evaluate` only). ``study`` (the
    stages up to `importance`, then the study) is not part of it: it unlearns every variant
    once per run, on environments of its own, and is run on its own.
    """
    pipelines: dict[str, Pipeline] = {}
    sources, shape = data_sources(), evaluation_shape()
    shapes = {
        "data_prep": sources,
        "train": sources,
        "unlearn": sources,
        "evaluate": {**shape, **sources},
        "sweep": {**shape, **sources},
        "successive": sources,
    }
    for name, stage in STAGES.items():
        upstream = pipelines[FOLLOWS[name]] if name in FOLLOWS else Pipeline([])
        pipelines[name] = upstream + stage.create_pipeline(**shapes.get(name, {}))
    baselines = map(unlearn.create_baseline_pipeline, shape["methods"])
    pipelines["evaluate"] += Pipeline(sum(baselines, Pipeline([])), tags="evaluate")
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    runs = study.create_pipeline(runs=study_runs(), retrain=train.create_retrain_pipeline())
    pipelines["study"] = pipelines["importance"] + runs
    return pipelines
