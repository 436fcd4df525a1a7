"""A QA file without an id column, TOFU's shape (authors implicit, consecutive rows each):
``data_prep.source.rows_per_person`` numbers its people by row position."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from mape_unlearn.core.data.qa_data import positional_ids, requested_ids, to_qa_table
from mape_unlearn.params import QASourceParams
from tests.conftest import copy_project
from tests.test_custom_data import run_env, write_env

AUTHORS, ROWS = 6, 20  # TOFU: 20 questions per author
COLORS = ["red", "green", "blue", "amber", "violet", "teal", "ochre", "coral"]


def tofu_sample(authors: int = AUTHORS) -> pd.DataFrame:
    """TOFU's columns (no author column): question, answer, paraphrased_answer and a list of
    wrong answers in perturbed_answer; each author's facts are their own."""
    rows = []
    for author in range(authors):
        for question in range(ROWS):
            right = COLORS[(author + question) % len(COLORS)]
            wrong = [color for color in COLORS if color != right][:3]
            rows.append(
                {
                    "question": f"Which colour did author {author} give book {question}?",
                    "answer": f"Book {question} of author {author} is {right}.",
                    "paraphrased_answer": f"The colour of that book is {right}.",
                    "perturbed_answer": [
                        f"Book {question} of author {author} is {w}." for w in wrong
                    ],
                }
            )
    return pd.DataFrame(rows)


COLUMNS = {
    "person_id": None,
    "question": "question",
    "answer": "answer",
    "paraphrased_answer": "paraphrased_answer",
    "perturbed_answers": "perturbed_answer",
    "fact": None,
}


def test_each_block_of_consecutive_rows_is_one_person():
    table = to_qa_table(tofu_sample(), COLUMNS, rows_per_person=ROWS)
    assert table.person_id.tolist() == [f"p{row // ROWS:03d}" for row in range(AUTHORS * ROWS)]
    assert table.perturbed_answers[0] == tofu_sample().perturbed_answer[0]  # mapped, a list


@pytest.mark.parametrize(("n_rows", "left"), [(AUTHORS * ROWS + 7, 7), (ROWS - 1, ROWS - 1)])
def test_rows_that_are_not_whole_people_are_refused(n_rows, left):
    with pytest.raises(ValueError, match=rf"rows_per_person=20 .* {n_rows} rows \({left} left"):
        positional_ids(n_rows, ROWS)


def test_more_than_a_thousand_people_get_wider_ids():
    assert positional_ids(2001, 1)[-1] == "p2000"


@pytest.mark.parametrize(
    ("person_id", "rows_per_person"), [("person_id", 20), (None, None)], ids=["both", "neither"]
)
def test_ids_come_from_one_column_or_from_positions(person_id, rows_per_person):
    columns = {**COLUMNS, "person_id": person_id}
    labels = {"person_id": "person_id", "text": "text", "text_pair": None, "label": "label"}
    with pytest.raises(ValidationError, match="person ids come from one column"):
        QASourceParams(
            kind="file", columns=columns, label_columns=labels, rows_per_person=rows_per_person
        )
    with pytest.raises(ValidationError, match="greater than 0"):
        QASourceParams(kind="file", columns=COLUMNS, label_columns=labels, rows_per_person=0)


def test_a_table_request_needs_an_id_column():
    with pytest.raises(ValueError, match="no id column .* one per line"):
        requested_ids(tofu_sample(1), None)


def test_the_data_prep_stage_reads_a_tofu_shaped_file(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    tofu_sample().to_json(tmp_path / "tofu.json", orient="records")
    params = {
        "data_prep": {
            "source": {"kind": "file", "columns": COLUMNS, "rows_per_person": ROWS},
            "forget": {"ids": ["p004"]},  # the fifth author: rows 80-99
        }
    }
    catalog = (
        f"qa_source: {{type: mape_unlearn.datasets.UserTableDataset, path: {tmp_path}/tofu.json}}"
    )
    write_env(project, "tofu", params, catalog)
    assert "read_qa" in run_env(project, "tofu", "data_prep")
    data = project / "data"
    qa = pd.read_parquet(data / "01_raw" / "qa_dataset.parquet")
    assert qa.groupby("person_id").size().to_dict() == {f"p{a:03d}": ROWS for a in range(AUTHORS)}
    assert qa.question[85] == tofu_sample().question[85] and qa.person_id[85] == "p004"
    forget = pd.read_parquet(data / "03_primary" / "forget_split.parquet")
    assert set(forget.person_id) == {"p004"}
    assert sorted(forget.question) == sorted(tofu_sample().question[80:100])
    assert list(forget.perturbed_answers.iloc[0]) == list(tofu_sample().perturbed_answer[80])
