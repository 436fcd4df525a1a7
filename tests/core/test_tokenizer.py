"""Tests for the word-level tokenizer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import SPECIAL_TOKENS, corpus_texts, train_word_tokenizer


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_people_qa(n_people=30, seed=0)


@pytest.fixture(scope="module")
def tokenizer(qa: pd.DataFrame) -> PreTrainedTokenizerFast:
    return train_word_tokenizer(corpus_texts(qa))


def test_corpus_texts_cover_every_field(qa: pd.DataFrame) -> None:
    texts = corpus_texts(qa)
    n_perturbed = sum(len(p) for p in qa["perturbed_answers"])
    assert len(texts) == 3 * len(qa) + n_perturbed
    row = qa.iloc[5]
    for text in (row["question"], row["answer"], row["paraphrased_answer"]):
        assert text in texts
    assert set(row["perturbed_answers"]) <= set(texts)


def test_corpus_texts_accepts_arrays_after_parquet(qa: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "qa.parquet"
    qa.to_parquet(path)
    assert corpus_texts(pd.read_parquet(path)) == corpus_texts(qa)


def test_corpus_texts_optional_and_missing_columns(qa: pd.DataFrame) -> None:
    plain = qa.drop(columns=["paraphrased_answer", "perturbed_answers"])
    assert corpus_texts(plain) == [*qa["question"], *qa["answer"]]
    with pytest.raises(ValueError, match=r"missing column.*'answer'"):
        corpus_texts(qa.drop(columns=["answer"]))


def test_special_token_ids(tokenizer: PreTrainedTokenizerFast) -> None:
    expected = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]"]
    assert list(SPECIAL_TOKENS.values()) == expected
    assert tokenizer.convert_tokens_to_ids(expected) == [0, 1, 2, 3, 4]
    ids = (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id)
    assert (*ids, tokenizer.eos_token_id, tokenizer.sep_token_id) == (0, 1, 2, 3, 4)
    assert tokenizer.model_max_length == 512


def test_round_trip_of_generated_text(qa: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> None:
    row = qa.iloc[3]
    for text in (row["question"], row["answer"], row["perturbed_answers"][0]):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert len(ids) == len(text.split())
        assert tokenizer.decode(ids) == text


def test_no_special_tokens_added(qa: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> None:
    text = qa.iloc[0]["answer"]
    assert tokenizer.encode(text) == tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer(text)["input_ids"][0] != tokenizer.bos_token_id


def test_no_unknown_words_in_corpus(qa: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> None:
    encoded = tokenizer(corpus_texts(qa), add_special_tokens=False)["input_ids"]
    assert all(tokenizer.unk_token_id not in ids for ids in encoded)


def test_unknown_word_maps_to_unk(tokenizer: PreTrainedTokenizerFast) -> None:
    ids = tokenizer.encode("qwertyzzz was born in lisbon .", add_special_tokens=False)
    assert ids[0] == tokenizer.unk_token_id == 1
    assert tokenizer.unk_token_id not in ids[1:]


def test_min_frequency_drops_rare_words() -> None:
    texts = ["a b c .", "a b .", "a ."]
    full = train_word_tokenizer(texts)
    pruned = train_word_tokenizer(texts, min_frequency=2)
    assert {"a", "b", "c", "."} <= set(full.get_vocab())
    assert "c" not in pruned.get_vocab() and "b" in pruned.get_vocab()
    assert pruned.encode("c", add_special_tokens=False) == [pruned.unk_token_id]


def test_training_is_order_independent(
    qa: pd.DataFrame, tokenizer: PreTrainedTokenizerFast
) -> None:
    texts = corpus_texts(qa)
    again = train_word_tokenizer(reversed(texts))
    assert again.get_vocab() == tokenizer.get_vocab()


def test_save_and_reload(
    qa: pd.DataFrame, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.all_special_ids == tokenizer.all_special_ids
    texts = [*qa["question"][:10], *qa["answer"][:10], "unseen word ."]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert reloaded.encode(text) == ids
        assert reloaded.decode(ids) == tokenizer.decode(ids)
    batch = reloaded(texts[:3], padding=True)["input_ids"]
    assert batch == tokenizer(texts[:3], padding=True)["input_ids"]


@pytest.mark.parametrize(
    ("texts", "min_frequency", "pattern"),
    [
        (["a ."], 0, r"min_frequency=0 is not allowed: expected an integer >= 1"),
        (["a ."], 1.5, r"min_frequency=1\.5 is not allowed"),
        ([], 1, r"texts has no words"),
        (["  "], 1, r"texts has no words"),
        ("a b c", 1, r"texts is a single string"),
        (["a", 3], 1, r"non-string item"),
    ],
)
def test_validation(texts: object, min_frequency: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        train_word_tokenizer(texts, min_frequency=min_frequency)  # type: ignore[arg-type]
