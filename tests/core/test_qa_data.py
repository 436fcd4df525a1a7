"""A user's QA table mapped to the project's columns, and the errors that name what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mape_unlearn.core.data.qa_data import class_ids, requested_ids, to_label_table, to_qa_table

COLUMNS = {
    "person_id": "doc",
    "question": "q",
    "answer": "a",
    "paraphrased_answer": "para",
    "perturbed_answers": "wrong",
}


def user_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc": [7, 7, 8],
            "q": ["who ?", "where ?", "when ?"],
            "a": ["ann .", "oslo .", 1999],
            "para": ["it is ann .", "in oslo .", "in 1999 ."],
            "wrong": [["bo ."], np.array(["rome .", "bonn ."]), '["in 2001 ."]'],  # CSV: JSON
            "extra": [1, 2, 3],
        }
    )


def test_columns_are_mapped_to_the_projects_names() -> None:
    qa = to_qa_table(user_frame(), COLUMNS)
    assert list(qa.columns) == list(COLUMNS)
    assert qa.person_id.tolist() == ["7", "7", "8"]  # ids are strings
    assert qa.answer.tolist() == ["ann .", "oslo .", "1999"]
    assert qa.perturbed_answers.tolist() == [["bo ."], ["rome .", "bonn ."], ["in 2001 ."]]


def test_optional_columns_may_be_absent() -> None:
    columns = {**COLUMNS, "paraphrased_answer": None, "perturbed_answers": None}
    qa = to_qa_table(user_frame().drop(columns=["para", "wrong"]), columns)
    assert list(qa.columns) == ["person_id", "question", "answer"]


def test_a_missing_column_is_named_with_the_columns_found() -> None:
    with pytest.raises(ValueError) as raised:
        to_qa_table(user_frame(), {**COLUMNS, "answer": "response"})
    message = str(raised.value)
    assert "column 'response' (data_prep.source.columns.answer) is not in the data" in message
    assert "columns found: ['doc', 'q', 'a', 'para', 'wrong', 'extra']" in message


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("a", None, "column 'a' (data_prep.source.columns.answer) is empty in 1 row(s): 1"),
        ("q", "  ", "column 'q' (data_prep.source.columns.question) is empty in 1 row(s): 1"),
        ("doc", None, "column 'doc' (data_prep.source.columns.person_id) is empty"),
        ("wrong", "not a list", "holds 'not a list' in row 1: expected a non-empty list"),
        ("wrong", [], "expected a non-empty list of wrong answers"),
    ],
)
def test_bad_values_are_named(column: str, value: object, expected: str) -> None:
    frame = user_frame().astype({"doc": object})
    frame.at[1, column] = value
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        to_qa_table(frame, COLUMNS)


def test_a_required_column_cannot_be_null() -> None:
    with pytest.raises(ValueError, match=r"names \['question'\] wrongly"):
        to_qa_table(user_frame(), {**COLUMNS, "question": None})


def test_requested_ids_from_ids_or_rows() -> None:
    assert requested_ids(pd.DataFrame({"doc": [8, 7, 8]}), "doc") == ["8", "7"]
    assert requested_ids(user_frame(), "doc") == ["7", "8"]  # whole rows of the data
    with pytest.raises(ValueError, match=r"column 'doc' .* not in the deletion request"):
        requested_ids(pd.DataFrame({"id": ["7"]}), "doc")


LABEL_COLUMNS = {"person_id": "doc", "text": "a", "text_pair": "b", "label": "y"}


def labelled_frame(labels: list[object]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {"doc": [7, 7, "8"][:n], "a": ["x y", "z", "w"][:n], "b": ["p", "q", "r"][:n], "y": labels}
    )


def test_a_classification_table_keeps_integer_class_ids() -> None:
    table, names = to_label_table(labelled_frame([2, 0, 2]), LABEL_COLUMNS)
    assert list(table.columns) == ["person_id", "text", "text_pair", "label"]
    assert table.person_id.tolist() == ["7", "7", "8"]
    assert table.label.tolist() == [2, 0, 2] and table.label.dtype == np.int64
    assert names == ["0", "1", "2"]


def test_other_labels_are_numbered_in_sorted_order() -> None:
    ids, names = class_ids(pd.Series(["pos", "neg", "pos"]), "y")
    assert ids.tolist() == [1, 0, 1] and names == ["neg", "pos"]
    ids, names = class_ids(pd.Series([1.5, -1.0, 1.5]), "y")  # not class ids: numbered too
    assert ids.tolist() == [1, 0, 1] and names == ["-1.0", "1.5"]


def test_classification_columns_and_labels_are_checked() -> None:
    with pytest.raises(ValueError, match=r"label_columns names \['label'\] wrongly"):
        to_label_table(labelled_frame([0]), {**LABEL_COLUMNS, "label": None})
    with pytest.raises(ValueError, match=r"column 'y' \(data_prep.source.label_columns.label\) "):
        to_label_table(labelled_frame([0, None]), LABEL_COLUMNS)
    with pytest.raises(ValueError, match=r"'a' \(data_prep.source.label_columns.text\) is empty"):
        to_label_table(labelled_frame([0]).assign(a=[" "]), LABEL_COLUMNS)
