"""What users bring: QA tables in every supported format, and model directories, read-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import datasets
import pandas as pd
import pytest
from kedro.io import DatasetError

from mape_unlearn.core.data.qa_data import to_qa_table
from mape_unlearn.datasets import PretrainedModelDataset, TokenizerDataset, UserTableDataset
from tests.conftest import save_user_model

COLUMNS = {
    "person_id": "author",
    "question": "prompt",
    "answer": "response",
    "paraphrased_answer": "paraphrase",
    "perturbed_answers": "wrong",
}


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "author": ["007", "007", "12"],
            "prompt": ["who wrote it ?", "where , then ?", "when ?"],
            "response": ["ann did .", "in oslo .", "in 1999 ."],
            "paraphrase": ["it was ann .", "oslo , it was .", "it was 1999 ."],
            "wrong": [["bo did .", "cy did ."], ["in rome ."], ["in 2001 .", "in 1990 ."]],
        }
    )


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.assign(wrong=frame.wrong.map(json.dumps)).to_csv(path, index=False)


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    "qa.json": lambda frame, path: frame.to_json(path, orient="records"),
    "qa.jsonl": lambda frame, path: frame.to_json(path, orient="records", lines=True),
    "qa.csv": _csv,
    "qa.parquet": lambda frame, path: frame.to_parquet(path),
    "qa_hf": lambda frame, path: datasets.Dataset.from_pandas(frame).save_to_disk(str(path)),
}


@pytest.mark.parametrize("name", WRITERS)
def test_each_format_round_trips(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    WRITERS[name](frame, path)
    loaded = to_qa_table(UserTableDataset(str(path)).load(), COLUMNS)
    expected = to_qa_table(frame, COLUMNS)
    pd.testing.assert_frame_equal(loaded, expected)
    assert loaded.person_id.tolist() == ["007", "007", "12"]  # ids are read as written


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"the data file '.*nowhere.jsonl' does not exist"):
        UserTableDataset(str(tmp_path / "nowhere.jsonl")).load()


@pytest.mark.parametrize("content", ["", "prompt,response\n"])
def test_an_empty_file_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "qa.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=r"the data file '.*qa.csv' is empty"):
        UserTableDataset(str(path)).load()


def test_the_users_data_is_never_written(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "qa.parquet"
    frame.to_parquet(path)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match="read-only"):
        UserTableDataset(str(path)).save(frame)
    assert path.read_bytes() == before


def test_an_unknown_suffix_asks_for_a_format(tmp_path: Path) -> None:
    path = tmp_path / "qa.tsv"  # (.txt is a list of ids)
    path.write_text("x")
    with pytest.raises(DatasetError, match=r"cannot tell the format .* set `format`"):
        UserTableDataset(str(path)).load()


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_user_model(tmp_path_factory.mktemp("user") / "model", ["who wrote it ? ann did ."])


def test_a_read_only_model_directory_refuses_saves(user_model: Path) -> None:
    model = PretrainedModelDataset(str(user_model), read_only=True)
    tokenizer = TokenizerDataset(str(user_model), read_only=True)
    loaded_model, loaded_tokenizer = model.load(), tokenizer.load()
    files = {p.name: p.read_bytes() for p in user_model.iterdir()}
    with pytest.raises(DatasetError, match=r"model directory '.*' is read-only"):
        model.save(loaded_model)
    with pytest.raises(DatasetError, match="train.original: pretrained"):
        tokenizer.save(loaded_tokenizer)
    assert {p.name: p.read_bytes() for p in user_model.iterdir()} == files


def test_a_model_directory_without_weights_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"model directory '.*' has no weights"):
        PretrainedModelDataset(str(tmp_path)).load()
    with pytest.raises(DatasetError, match=r"model directory '.*nowhere' does not exist"):
        PretrainedModelDataset(str(tmp_path / "nowhere")).load()


def test_a_model_directory_without_tokenizer_is_named(user_model: Path, tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((user_model / name).read_bytes())
    with pytest.raises(DatasetError, match=r"tokenizer directory '.*' has no tokenizer files"):
        TokenizerDataset(str(tmp_path)).load()


@pytest.mark.parametrize(
    ("name", "text", "listed"),
    [
        ("ids.txt", "a1\n\n  a2 \n", ["a1", "a2"]),
        ("ids.csv", "a1\na2\n", ["a1", "a2"]),
        ("ids.csv", "author_id\na1\na2\n", ["author_id", "a1", "a2"]),
    ],
)
def test_a_list_of_ids_keeps_every_line_for_the_header_rule(
    tmp_path: Path, name: str, text: str, listed: list[str]
) -> None:
    from mape_unlearn.core.data.splits import ID_LIST, listed_ids

    path = tmp_path / name
    path.write_text(text)
    frame = UserTableDataset(str(path)).load()
    assert list(frame.columns) == [ID_LIST] and frame[ID_LIST].tolist() == listed
    ids, header = listed_ids(frame[ID_LIST].tolist(), known={"a1", "a2"})
    assert ids == ["a1", "a2"] and header == ("author_id" if len(listed) == 3 else None)
