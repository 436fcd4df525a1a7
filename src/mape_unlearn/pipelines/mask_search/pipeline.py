"""Wiring of `mask_search`."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.mask_search.nodes import search_modules


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                search_modules,
                [
                    "forget_mask_gradients",
                    "retain_mask_gradients",
                    "training_split",
                    "forget_split",
                    "params:mask_search",
                ],
                ["module_selection", "search_trace"],
                name="search_modules",
            )
        ],
        tags="mask_search",
    )
