"""The stages of the workflow, in order: the names their pipelines are registered and their
nodes tagged by.

A module of its own, importing nothing: the registry builds a pipeline per name
(``pipeline_registry``), and tracking names a stage run per name (``hooks.stage_runs``) without
importing the pipelines, their nodes or the settings that import the hooks.
"""

STAGES: tuple[str, ...] = (
    "data_prep",
    "train",
    "importance",
    "mask_search",
    "unlearn",
    "evaluate",
    "sweep",
    "successive",
)
