"""Wiring of `data_prep`."""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.data_prep.nodes import fit_tokenizer, generate_qa, split_people


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(generate_qa, "params:data_prep", "qa_dataset", name="generate_qa"),
            Node(
                split_people,
                ["qa_dataset", "params:data_prep"],
                ["training_split", "forget_split", "retain_split", "holdout_split"],
                name="split_people",
            ),
            Node(fit_tokenizer, "qa_dataset", "tokenizer", name="fit_tokenizer"),
        ],
        tags="data_prep",
    )
