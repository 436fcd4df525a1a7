"""Wiring of `data_prep`.

Holding out and choosing the people to forget are separate nodes with separate parameters, so
a new deletion request (`data_prep.forget`) leaves `training_split`, and everything trained on
it, unchanged.
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.data_prep.nodes import (
    choose_forget,
    fit_tokenizer,
    generate_qa,
    hold_out,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(generate_qa, "params:data_prep.generator", "qa_dataset", name="generate_qa"),
            Node(
                hold_out,
                ["qa_dataset", "params:data_prep.holdout"],
                ["training_split", "holdout_split"],
                name="hold_out",
            ),
            Node(
                choose_forget,
                ["training_split", "params:data_prep.forget"],
                ["forget_split", "retain_split"],
                name="choose_forget",
            ),
            Node(fit_tokenizer, "qa_dataset", "tokenizer", name="fit_tokenizer"),
        ],
        tags="data_prep",
    )
