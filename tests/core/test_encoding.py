"""Encoding QA pairs with a real BPE tokenizer like GPT-2's: no PAD, no SEP, BOS = EOS."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from mape_unlearn.core.data.encoding import IGNORE, encode_qa
from tests.conftest import bpe_tokenizer

QUESTIONS = ["who wrote the glass orchard ?", "when ?"]
ANSWERS = ["mara velden wrote it .", "in 1999 ."]


def test_a_gpt2_style_tokenizer_encodes_prompt_answer_and_padding() -> None:
    tokenizer = bpe_tokenizer(QUESTIONS + ANSWERS)
    assert tokenizer.pad_token_id is None and tokenizer.sep_token_id is None
    end = tokenizer.eos_token_id
    data = encode_qa(tokenizer, QUESTIONS, ANSWERS)
    for row, (question, answer) in enumerate(zip(QUESTIONS, ANSWERS, strict=True)):
        q = tokenizer(question, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        n = len(q) + len(a) + 2
        assert data.input_ids[row, :n].tolist() == [end, *q, *a, end]  # BOS, no SEP, EOS
        assert data.labels[row, :n].tolist() == [IGNORE] * (1 + len(q)) + a + [end]
        assert tokenizer.decode(a) == answer
        padding = data.attention_mask[row] == 0
        assert (data.input_ids[row][padding] == end).all()  # EOS pads when there is no PAD
        assert (data.labels[row][padding] == IGNORE).all()
    assert int(data.attention_mask[1].sum()) < data.input_ids.shape[1]  # the short one is padded


def test_a_tokenizer_without_eos_is_named() -> None:
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(ValueError, match="the tokenizer has no eos_token"):
        encode_qa(tokenizer, ["a"], ["a"])
