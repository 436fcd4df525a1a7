"""The stages, registered by name.

Each stage's pipeline includes every stage upstream of it, so that ``kedro run --pipeline=<stage>``
works from a fresh checkout: the caching runner builds what is missing or stale, then the stage.
The stages form a chain up to `unlearn`; `evaluate`, `sweep` and `successive` each follow
`unlearn` and need nothing of one another.
"""

import os
from importlib import import_module
from pathlib import Path
from typing import Any

from kedro.framework.project import settings
from kedro.pipeline import Pipeline
from kedro.utils import find_kedro_project

from mape_unlearn.params import EvaluateParams, ForgetParams, QASourceParams, TrainParams
from mape_unlearn.pipelines import study, train, unlearn
from mape_unlearn.pipelines.unlearn.pipeline import TARGET_LEVELS as TARGETS
from mape_unlearn.settings import config_loader
from mape_unlearn.stages import STAGES as STAGE_NAMES

# each stage's pipeline package (mape_unlearn.pipelines.<stage>), by the names in
# mape_unlearn.stages, which tracking reads without importing the pipelines
STAGES = {name: import_module(f"mape_unlearn.pipelines.{name}") for name in STAGE_NAMES}
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


def project_conf_source() -> Path:
    """The configuration a Kedro session started here reads: ``settings.CONF_SOURCE`` (``conf``)
    of the project at or above the working directory, found as Kedro finds it."""
    return Path(find_kedro_project(Path.cwd()) or Path.cwd()) / settings.CONF_SOURCE


def _parameters(conf_source: Path | None) -> dict[str, Any]:
    """The parameters of ``conf/base`` and of the environment named by ``KEDRO_ENV`` (default
    ``local``), read as a session reads them (``settings.config_loader``) from ``conf_source``
    (default: :func:`project_conf_source`).

    Pipelines are built before a session knows its ``--env``, so the parameters that shape them
    are read here, Kedro's dynamic-pipeline pattern (``--params`` cannot change them). An
    environment without a folder or a file that is not YAML stops registration: ``kedro run``
    says which and where (``cli.config_error``), rather than registering the default's shape.
    """
    conf_source = conf_source or project_conf_source()
    return config_loader(conf_source, env=os.environ.get("KEDRO_ENV"))["parameters"]


def evaluation_shape(conf_source: Path | None = None) -> dict[str, tuple[str, ...]]:
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


def data_sources(conf_source: Path | None = None) -> dict[str, Any]:
    """Where the QA data, the deletion request, the original model and the stop level come
    from, which shape the stages: ``data_prep.source.kind``, ``data_prep.forget.from_file``,
    ``data_prep.world_facts``, ``train.original``, ``train.base``, ``train.retrain`` and
    ``unlearn.target``.

    Their groups are validated here: a misspelt choice would otherwise build another pipeline.
    """
    params = _parameters(conf_source)
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


def study_runs(conf_source: Path | None = None) -> tuple[str, ...]:
    """The runs of ``study_runs`` (one deletion request each), which shape the `study`."""
    return tuple(_parameters(conf_source).get("study_runs", {}))


def stage_arguments(
    sources: dict[str, Any], shape: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each stage's ``create_pipeline`` (none for the others), each
    named as the stage names it: a name the stage does not take fails registration."""
    return {
        "data_prep": {
            name: sources[name]
            for name in ("qa_source", "forget_from_file", "original", "base", "world_facts")
        },
        "train": {"original": sources["original"], "retrain": sources["retrain"]},
        "unlearn": {"target": sources["target"]},
        "evaluate": {
            "methods": shape["methods"],
            "retrain": sources["retrain"],
            "world_facts": sources["world_facts"],
        },
        "sweep": {"swept": shape["swept"]},
    }


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage with its upstream stages, ``__default__`` = all stages, and ``study``.

    ``__default__`` includes `sweep` and `successive`: a plain ``kedro run`` reproduces every
    result of the default (``make run`` runs `unlearn` and `evaluate` only). ``study`` (the
    stages up to `importance`, then the study) is not part of it: it unlearns every variant
    once per run, on environments of its own, and is run on its own.
    """
    pipelines: dict[str, Pipeline] = {}
    sources, shape = data_sources(), evaluation_shape()
    arguments = stage_arguments(sources, shape)
    for name, stage in STAGES.items():
        upstream = pipelines[FOLLOWS[name]] if name in FOLLOWS else Pipeline([])
        pipelines[name] = upstream + stage.create_pipeline(**arguments.get(name, {}))
    baselines = map(unlearn.create_baseline_pipeline, shape["methods"])
    pipelines["evaluate"] += Pipeline(sum(baselines, Pipeline([])), tags="evaluate")
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    runs = study.create_pipeline(runs=study_runs(), retrain=train.create_retrain_pipeline())
    pipelines["study"] = pipelines["importance"] + runs
    return pipelines
