"""Wiring of `mask_search`."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.mask_search.nodes import search_modules
from mape_unlearn.pipelines.mask_search.plots import plot_module_selection, plot_search_objective


def create_pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(
                search_modules,
                [
                    "original_model",
                    "forget_mask_gradients",
                    "retain_mask_gradients",
                    "training_split",
                    "forget_split",
                    "params:mask_search",
                ],
                ["module_selection", "search_trace"],
                name="search_modules",
            ),
            Node(
                plot_module_selection,
                "module_selection",
                "module_selection_plot",
                name="plot_module_selection",
            ),
            Node(
                plot_search_objective,
                "search_trace",
                "search_objective_plot",
                name="plot_search_objective",
            ),
        ],
        tags="mask_search",
    )
