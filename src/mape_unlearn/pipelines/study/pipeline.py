"""Wiring of `study`: one namespace per run (deletion request).

Each run ``study_<run>`` draws its forget set, trains its own retrain reference (the `train`
stage's retrain pipeline, given by the registry), computes the forget-side mask gradients on
fact and on answer tokens and unlearns every variant; the retain-side gradients and the
original model are shared with the main stages.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.study.nodes import (
    draw_request,
    forget_mask_gradients,
    study_report,
    study_variants,
)
from mape_unlearn.pipelines.study.plots import plot_study

SHARED = [
    "original_model",
    "tokenizer",
    "training_split",
    "holdout_split",
    "retain_mask_gradients",
]
PARAMETERS = ["data_prep.forget", "train", "importance", "forget_importance.max_samples"]
PARAMETERS += ["mask_search", "unlearn", "baselines", "study"]
VARIANT_INPUTS = [
    "original_model",
    "retrain_model",
    "tokenizer",
    "forget_split",
    "retain_split",
    "training_split",
    "holdout_split",
    "forget_fact_mask_gradients",
    "forget_answer_mask_gradients",
    "retain_mask_gradients",
    "params:mask_search",
    "params:unlearn",
    "params:baselines",
    "params:study",
    "params:run",
    "params:importance",
]


def _run(run: str, retrain: Pipeline) -> Pipeline:
    """Run ``run`` in its namespace; ``retrain`` trains ``retrain_model`` on ``retain_split``."""
    base = Pipeline(
        [
            Node(
                draw_request,
                ["training_split", "params:data_prep.forget", "params:run"],
                ["forget_split", "retain_split"],
                name="draw_request",
            ),
            retrain,
            Node(
                forget_mask_gradients,
                [
                    "original_model",
                    "tokenizer",
                    "forget_split",
                    "params:importance",
                    "params:forget_importance.max_samples",
                ],
                ["forget_fact_mask_gradients", "forget_answer_mask_gradients"],
                name="forget_mask_gradients",
            ),
            Node(study_variants, VARIANT_INPUTS, "variants", name="study_variants"),
        ]
    )
    return Pipeline(
        base,
        namespace=f"study_{run}",
        inputs={name: name for name in SHARED},
        parameters={
            "params:run": f"params:study_runs.{run}",
            **{f"params:{name}": f"params:{name}" for name in PARAMETERS},
        },
        outputs={"variants": f"study_{run}_variants"},
    )


def create_pipeline(*, runs: tuple[str, ...] = (), retrain: Pipeline | None = None) -> Pipeline:
    """One namespace per run of ``study_runs``, then the table and figure across runs;
    ``retrain``: the pipeline that trains a retrain reference (needed when there are runs)."""
    if runs and retrain is None:
        raise ValueError("the study's runs need a retrain pipeline (see pipeline_registry)")
    results = {run: f"study_{run}_variants" for run in runs}
    return Pipeline(
        [
            *(_run(run, retrain) for run in runs),
            Node(
                study_report,
                results,
                [
                    "study_results",
                    "study_summary",
                    "study_summary_markdown",
                    "study_paired",
                    "study_paired_markdown",
                ],
                name="study_report",
            ),
            Node(
                plot_study,
                {"study_results": "study_results", "study": "params:study", **results},
                "study_plot",
                name="plot_study",
            ),
        ],
        tags="study",
    )
