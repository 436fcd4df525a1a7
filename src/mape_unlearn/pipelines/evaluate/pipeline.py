"""Wiring of `evaluate`: every model's metrics (one namespace each) and the report.

The models are the original, ``unlearned`` (the module mask), each compared method's
``<method>_model`` (the `unlearn` stage's baselines, added by the registry) and the retrain
reference. The sparsity sweep and successive requests are stages of their own.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.evaluate.nodes import evaluate_model, metrics_report
from mape_unlearn.pipelines.evaluate.plots import plot_evaluation, plot_frontier

SHARED = ["original_model", "tokenizer", "forget_split", "retain_split", "holdout_split"]
# what evaluating one model reads of `evaluate` (not `methods`: adding a method re-runs no model)
PARAMETERS = {
    name: f"params:evaluate.{name}" for name in ("batch_size", "device", "autocast", "relearn")
}


def _evaluation(model: str, world_facts: bool) -> Pipeline:
    splits = [*SHARED[1:], *(["world_split"] if world_facts else [])]
    inputs = {name: name for name in splits}
    base = Pipeline(
        [
            Node(
                evaluate_model,
                {"model": "model", **{name: name for name in splits}, **PARAMETERS},
                ["metrics", "samples"],
                name="evaluate_model",
            )
        ]
    )
    return Pipeline(
        base,
        namespace=f"evaluate_{model}",
        inputs={"model": f"{model}_model", **inputs},
        parameters={p: p for p in PARAMETERS.values()},
        outputs={"metrics": f"{model}_metrics", "samples": f"{model}_sample_metrics"},
    )


def create_pipeline(
    *, methods: tuple[str, ...] = (), retrain: bool = True, world_facts: bool = False
) -> Pipeline:
    """Evaluate original, unlearned (module mask), each baseline in ``methods`` and, when
    ``train.retrain`` trains one, the retrain reference; ``world_facts``: on world knowledge
    too (``data_prep.world_facts``)."""
    unlearned = ["unlearned", *methods]
    models = ["original", *unlearned, *(["retrain"] if retrain else [])]
    report_inputs = {
        **{model: f"{model}_metrics" for model in models},
        **{f"{model}_samples": f"{model}_sample_metrics" for model in models},
        "unlearned_cost": "unlearning_cost",
        **{f"{method}_cost": f"{method}_unlearning_cost" for method in methods},
    }
    report = Node(
        metrics_report,
        report_inputs,
        ["evaluation_metrics", "evaluation_table_csv", "evaluation_table"],
        name="report",
    )
    plot = Node(plot_evaluation, "evaluation_metrics", "evaluation_plot", name="plot_evaluation")
    frontier = Node(
        plot_frontier,
        {
            "unlearning_target": "unlearning_target",
            "unlearned": "unlearning_trace",
            **{method: f"{method}_unlearning_trace" for method in methods},
        },
        "frontier_plot",
        name="plot_frontier",
    )
    return Pipeline(
        [
            *(_evaluation(model, world_facts) for model in models),
            report,
            plot,
            frontier,
        ],
        tags="evaluate",
    )
