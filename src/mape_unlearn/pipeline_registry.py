"""The stages, registered by name.

Each stage's pipeline includes every stage upstream of it, so that ``kedro run --pipeline=<stage>``
works from a fresh checkout: it builds what the stage needs, then the stage.
"""

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


def register_pipelines() -> dict[str, Pipeline]:
    """Each stage with its upstream stages, and ``__default__`` = all stages."""
    pipelines: dict[str, Pipeline] = {}
    upstream = Pipeline([])
    for name, stage in STAGES.items():
        upstream = upstream + stage.create_pipeline()
        pipelines[name] = upstream
    pipelines["__default__"] = upstream
    return pipelines
