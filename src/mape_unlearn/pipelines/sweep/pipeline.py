"""Wiring of `sweep`: each swept method unlearned again at each sparsity (``sweep_<method>``),
the sweep as one table, and its figure.

A point reuses the `unlearn` stage's selection and masked unlearning, at the base rule and stop
criterion of ``unlearn``; only the sparsity of ``mask_search`` changes.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.sweep.nodes import sparsity_sweep, sweep_report
from mape_unlearn.pipelines.sweep.plots import plot_sweep

INPUTS = [
    "original_model",
    "tokenizer",
    "forget_split",
    "training_split",
    "forget_mask_gradients",
    "retain_mask_gradients",
    "retain_split",
    "unlearning_target",
]


def _sweep(method: str) -> Pipeline:
    node = Node(
        sparsity_sweep,
        [*INPUTS, "params:mask_search", "params:selector", "params:unlearn", "params:sweep"],
        "sparsity_sweep",
        name="sparsity_sweep",
    )
    return Pipeline(
        [node],
        namespace=f"sweep_{method}",
        inputs={name: name for name in INPUTS},
        parameters={
            "params:selector": f"params:baselines.{method}",
            **{p: p for p in ("params:mask_search", "params:unlearn", "params:sweep")},
        },
        outputs={"sparsity_sweep": f"{method}_sparsity_sweep"},
    )


def create_pipeline(*, swept: tuple[str, ...] = ()) -> Pipeline:
    """Sweep the sparsity of each method in ``swept`` (names from ``baselines``); no nodes
    when ``swept`` is empty."""
    if not swept:
        return Pipeline([])
    return Pipeline(
        [
            *map(_sweep, swept),
            Node(
                sweep_report,
                {method: f"{method}_sparsity_sweep" for method in swept},
                "sparsity_sweep_table",
                name="sweep_report",
            ),
            Node(plot_sweep, "sparsity_sweep_table", "sparsity_sweep_plot", name="plot_sweep"),
        ],
        tags="sweep",
    )
