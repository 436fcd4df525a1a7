"""The `data_prep` pipeline on an in-memory catalog, and its independence of the forget request."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.people_labels import label_people
from mape_unlearn.params import (
    ForgetParams,
    GeneratorParams,
    HoldoutParams,
    LabelColumns,
    QAColumns,
    QASourceParams,
    Task,
)
from mape_unlearn.pipelines.data_prep import create_pipeline

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ["qa_dataset", "training_split", "forget_split", "retain_split", "holdout_split"]
IDENTITY = QAColumns(
    person_id="person_id",
    question="question",
    answer="answer",
    paraphrased_answer="paraphrased_answer",
    perturbed_answers="perturbed_answers",
    fact=None,
)
LABELS = LabelColumns(person_id="person_id", text="text", text_pair=None, label="label")


def forget_params(**changes: object) -> ForgetParams:
    return ForgetParams(
        **{"fraction": 0.34, "ids": None, "from_file": False, "min_retain_rows": 32, "seed": 0}
        | changes
    )


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so intermediate outputs stay inspectable."""

    def _release(self) -> None:
        pass


def run_data_prep(
    forget: ForgetParams | None = None, inputs: dict[str, object] | None = None, **shape: object
) -> dict[str, object]:
    """Run the pipeline (shaped by ``shape``) on 12 people, or on the ``qa_source`` of
    ``inputs``; Kedro converts typed params only inside a session, so the parameter datasets
    hold the pydantic models themselves."""
    params = {
        "params:data_prep.source": QASourceParams(
            kind="generated", columns=IDENTITY, label_columns=LABELS
        ),
        "params:data_prep.task": "qa",
        "params:data_prep.generator": GeneratorParams(
            n_people=12, n_labels=2, distinct_values=False, seed=0
        ),
        "params:data_prep.holdout": HoldoutParams(fraction=0.25, ids=None, seed=0),
        "params:data_prep.forget": forget or forget_params(),
        "params:data_prep.forget.ids": (forget or forget_params()).ids,
        "params:train.original": "trained",
    }
    pipeline = create_pipeline(**shape)
    outputs = sorted(pipeline.all_outputs())
    datasets = {name: MemoryDataset(value) for name, value in (params | (inputs or {})).items()}
    datasets |= {name: KeptDataset() for name in outputs}
    catalog = DataCatalog(datasets)
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog[name].load() for name in outputs}


@pytest.fixture(scope="module")
def outputs() -> dict[str, object]:
    return run_data_prep()


def people_of(frame: pd.DataFrame) -> set[str]:
    return set(frame["person_id"])


def test_wiring() -> None:
    pipeline = create_pipeline()
    assert {node.name for node in pipeline.nodes} == {
        "generate_qa",
        "hold_out",
        "choose_forget",
        "fit_tokenizer",
    }
    assert all(node.tags == {"data_prep"} for node in pipeline.nodes)
    assert pipeline.all_outputs() == {*OUTPUTS, "fact_rules", "tokenizer"}
    # of the deletion request, only its ids reach the trained-on people (the holdout never
    # draws a requested person); the caching runner keeps training_split's key when its bytes
    # do not change, so a new request does not retrain the original
    assert pipeline.to_outputs("training_split", "holdout_split").inputs() == {
        "params:data_prep.task",
        "params:data_prep.generator",
        "params:data_prep.holdout",
        "params:data_prep.forget.ids",
        "params:train.original",
    }
    assert "params:data_prep.forget" not in pipeline.to_outputs("tokenizer").inputs()


def test_splits(outputs: dict[str, object]) -> None:
    qa, training, forget, retain, holdout = (outputs[name] for name in OUTPUTS)
    assert len(people_of(qa)) == 12
    assert (len(people_of(holdout)), len(people_of(training))) == (3, 9)
    assert (len(people_of(forget)), len(people_of(retain))) == (3, 6)
    assert not people_of(training) & people_of(holdout)
    assert people_of(training) | people_of(holdout) == people_of(qa)
    assert not people_of(forget) & people_of(retain)
    assert people_of(forget) | people_of(retain) == people_of(training)
    assert len(training) + len(holdout) == len(qa)
    assert len(forget) + len(retain) == len(training)
    for part in (training, holdout):
        expected = qa[qa["person_id"].isin(people_of(part))].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected)


def test_tokenizer_covers_the_data(outputs: dict[str, object]) -> None:
    tokenizer, qa = outputs["tokenizer"], outputs["qa_dataset"]
    words = set(" ".join(qa["question"]).split()) | set(" ".join(qa["answer"]).split())
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(sorted(words))


def test_new_forget_request_leaves_training_split_unchanged(outputs: dict[str, object]) -> None:
    ids = sorted(people_of(outputs["training_split"]))[:2]
    again = run_data_prep(forget_params(fraction=0.5, ids=ids, seed=3))
    assert people_of(again["forget_split"]) == set(ids)
    for name in ("qa_dataset", "training_split", "holdout_split"):
        pd.testing.assert_frame_equal(again[name], outputs[name])


def test_base_parameters_validate() -> None:
    conf = yaml.safe_load((ROOT / "conf" / "base" / "parameters_data_prep.yml").read_text())
    groups = conf["data_prep"]
    assert set(groups) == {"task", "source", "generator", "world_facts", "holdout", "forget"}
    assert groups["world_facts"] is False
    assert groups["task"] in get_args(Task)
    QASourceParams(**groups["source"])
    GeneratorParams(**groups["generator"])
    HoldoutParams(**groups["holdout"])
    ForgetParams(**groups["forget"])


def test_wiring_for_a_users_file_request_and_model() -> None:
    pipeline = create_pipeline(qa_source="file", forget_from_file=True, original="pretrained")
    assert {node.name for node in pipeline.nodes} == {
        "read_qa",
        "hold_out",
        "read_forget_request",
        "choose_forget",
    }
    assert pipeline.inputs() >= {"qa_source", "forget_request"}
    assert "tokenizer" not in pipeline.all_outputs()  # it comes with the user's model


def test_wiring_for_a_gguf_base_and_world_facts() -> None:
    """The GGUF file is imported into the base model and its tokenizer; the world facts are
    checked against that base model, before any fine-tuning."""
    pipeline = create_pipeline(original="finetuned", base="gguf", world_facts=True)
    imported = pipeline.only_nodes("import_base_model")
    assert imported.inputs() == {"base_checkpoint"}
    assert imported.all_outputs() == {"base_model", "tokenizer"}
    checked = pipeline.only_nodes("known_world_facts")
    assert checked.inputs() == {
        "world_facts_source",
        "base_model",
        "tokenizer",
        "params:evaluate.batch_size",  # not the compared methods: changing them does not ask again
        "params:evaluate.device",
    }
    assert checked.all_outputs() == {"world_split", "world_facts_check"}
    plain = create_pipeline(original="finetuned")  # a base model directory: nothing to import
    assert {"import_base_model", "known_world_facts"}.isdisjoint(n.name for n in plain.nodes)


def test_a_users_file_and_a_deletion_request_file() -> None:
    generated = generate_people_qa(12, seed=0)
    theirs = generated.rename(columns={"person_id": "author", "question": "prompt"})
    columns = IDENTITY.model_copy(
        update={"person_id": "author", "question": "prompt", "fact": "fact"}  # their facts
    )
    training = run_data_prep()["training_split"]
    ids = sorted(people_of(training))[:2]
    outputs = run_data_prep(
        inputs={
            "params:data_prep.source": QASourceParams(
                kind="file", columns=columns, label_columns=LABELS
            ),
            "qa_source": theirs,
            "forget_request": theirs[theirs.author.isin(ids)],  # rows of the data to forget
        },
        qa_source="file",
        forget_from_file=True,
    )
    expected = generated.drop(columns=["person_name", "template"])
    pd.testing.assert_frame_equal(outputs["qa_dataset"], expected, check_dtype=False)
    assert outputs["fact_rules"] == {"column": len(generated)}
    assert outputs["forget_request_ids"] == ids
    assert people_of(outputs["forget_split"]) == set(ids)


def test_a_users_classification_file_with_named_labels() -> None:
    people = label_people(generate_people_qa(12, seed=0), n_labels=3, seed=0)
    names = {0: "neutral", 1: "negative", 2: "positive"}
    theirs = pd.DataFrame(
        {"doc": people.person_id, "sentence": people.text, "mood": people.label.map(names)}
    )
    columns = LABELS.model_copy(update={"person_id": "doc", "text": "sentence", "label": "mood"})
    outputs = run_data_prep(
        inputs={
            "params:data_prep.source": QASourceParams(
                kind="file", columns=IDENTITY, label_columns=columns
            ),
            "params:data_prep.task": "classification",
            "qa_source": theirs,
        },
        qa_source="file",
    )
    table = outputs["qa_dataset"]
    assert list(table.columns) == ["person_id", "text", "label"]
    by_name = {"negative": 0, "neutral": 1, "positive": 2}  # numbered in sorted order
    assert table.label.tolist() == [by_name[mood] for mood in theirs.mood]
    assert set(outputs["forget_split"].columns) == {"person_id", "text", "label"}
    encoded = outputs["tokenizer"](outputs["forget_split"].text.iloc[0])["input_ids"]
    assert encoded[0] == outputs["tokenizer"].bos_token_id  # wrapped for a classifier


def test_too_small_a_retain_set_stops_data_prep() -> None:
    with pytest.raises(ValueError, match=r"the retain set has 48 row\(s\), fewer than "):
        run_data_prep(forget_params(min_retain_rows=49))
