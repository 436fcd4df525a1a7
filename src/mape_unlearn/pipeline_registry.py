"""The stages, registered by name.

Each stage's pipeline includes every stage upstream of it, so that ``kedro run --pipeline=<stage>``
works from a fresh checkout: the caching runner builds what is missing or stale, then the stage.
"""

import os
from pathlib import Path

from kedro.config import MissingConfigException, OmegaConfigLoader
from kedro.pipeline import Pipeline

from mape_unlearn.pipelines import data_prep, evaluate, importance, mask_search, train, unlearn

STAGES = {
    "data_prep": data_prep,
    "train": train,
    "importance": importance,
    "mask_search": mask_search,
    "unlearn": unlearn,
    "evaluate": evaluate,
}


def evaluated_methods(conf_source: Path = Path("conf")) -> tuple[str, ...]:
    """``evaluate.methods`` from the configuration, which shapes the `evaluate` pipeline.

    Pipelines are built before a session knows its ``--env``, so this reads ``conf/base`` and
    the environment named by ``KEDRO_ENV`` (default ``local``), Kedro's dynamic-pipeline pattern.
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
        return tuple(loader["parameters"].get("evaluate", {}).get("methods", ()))
    except (MissingConfigException, ValueError):
        return ()


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage with its upstream stages, and ``__default__`` = all stages."""
    pipelines: dict[str, Pipeline] = {}
    upstream = Pipeline([])
    for name, stage in STAGES.items():
        kwargs = {"methods": evaluated_methods()} if name == "evaluate" else {}
        upstream = upstream + stage.create_pipeline(**kwargs)
        pipelines[name] = upstream
    pipelines["__default__"] = upstream
    return pipelines
