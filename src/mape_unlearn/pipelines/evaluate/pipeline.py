"""Wiring of `evaluate`: one evaluation pipeline reused for every model, then the report."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.evaluate.nodes import MODELS, evaluate_model, metrics_report


def create_pipeline(**kwargs) -> Pipeline:
    base = Pipeline(
        [
            Node(
                evaluate_model,
                [
                    "model",
                    "tokenizer",
                    "forget_split",
                    "retain_split",
                    "holdout_split",
                    "params:evaluate",
                ],
                ["metrics", "samples"],
                name="evaluate_model",
            )
        ]
    )
    per_model = [
        Pipeline(
            base,
            namespace=f"evaluate_{model}",
            inputs={
                "model": f"{model}_model",
                **{
                    name: name
                    for name in ("tokenizer", "forget_split", "retain_split", "holdout_split")
                },
            },
            parameters={"params:evaluate": "params:evaluate"},
            outputs={"metrics": f"{model}_metrics", "samples": f"{model}_sample_metrics"},
        )
        for model in MODELS
    ]
    report = Node(
        metrics_report,
        {
            **{model: f"{model}_metrics" for model in MODELS},
            **{f"{model}_samples": f"{model}_sample_metrics" for model in MODELS},
        },
        ["evaluation_metrics", "evaluation_table"],
        name="metrics_report",
    )
    return Pipeline([*per_model, report], tags="evaluate")
