"""Greedy decoding batched over prompts of different lengths, with the key/value cache, gives
exactly the tokens of the plain decoding: one row at a time, the whole sequence recomputed for
every token."""

from __future__ import annotations

import pytest
import torch

from mape_unlearn.core.data.encoding import IGNORE, QABatch
from mape_unlearn.core.evaluation.answer_scores import answer_token_scores
from mape_unlearn.core.evaluation.metrics import greedy_answers, reference_answers
from mape_unlearn.core.runtime.training import train_on_answers
from tests.conftest import VOCAB, tiny_model

CPU = torch.device("cpu")


def _ragged_batch(n: int = 7, seed: int = 0) -> QABatch:
    """Right-padded rows whose prompts (2 to 8 tokens) and answers (2 to 5) all differ in
    length, so a batch mixes them; each answer's last token is its EOS, 3."""
    generator = torch.Generator().manual_seed(seed)
    prompts = [2 + (3 * i) % 7 for i in range(n)]
    answers = [2 + i % 4 for i in range(n)]
    width = max(p + a for p, a in zip(prompts, answers, strict=True))
    input_ids = torch.zeros(n, width, dtype=torch.long)
    attention_mask = torch.zeros(n, width, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        ids = torch.randint(5, VOCAB, (prompt + answer,), generator=generator)
        ids[-1] = 3
        input_ids[i, : len(ids)] = ids
        attention_mask[i, : len(ids)] = 1
        labels[i, prompt : len(ids)] = ids[prompt:]
    return QABatch(input_ids, attention_mask, labels, labels.clone())


@torch.no_grad()
def _plain_greedy(model: torch.nn.Module, data: QABatch) -> list[list[int]]:
    """One row at a time, no padding, no cache: the whole sequence through the model per token."""
    answers = []
    for i, length in enumerate(data.prompt_lengths().tolist()):
        budget = int(data.labels[i].ne(IGNORE).sum())
        stop = int(data.labels[i, length + budget - 1])
        ids = data.input_ids[i, :length].tolist()
        generated: list[int] = []
        for _ in range(budget):
            logits = model(input_ids=torch.tensor([ids + generated])).logits
            generated.append(int(logits[0, -1].argmax()))
        answers.append(generated[: generated.index(stop)] if stop in generated else generated)
    return answers


@pytest.mark.parametrize("batch_size", [3, 7])
def test_batched_cached_decoding_gives_the_plain_decodings_tokens(model, batch_size):
    data = _ragged_batch()
    assert len(set(data.prompt_lengths().tolist())) >= 5  # batches mix prompt lengths
    plain = _plain_greedy(model, data)
    batched = greedy_answers(model, data, batch_size=batch_size, device=CPU)
    assert batched == plain
    assert [len(a) for a in plain] != [0] * len(plain)  # something was decoded


def test_a_decoded_eos_ends_the_answer():
    """A model that always says EOS (3) answers nothing, whatever its prompt's length."""
    model = tiny_model("llama")
    with torch.no_grad():
        model.lm_head.bias = torch.nn.Parameter(torch.zeros(VOCAB))
        model.lm_head.bias[3] = 1e4
    data = _ragged_batch(n=5, seed=1)
    assert greedy_answers(model, data, batch_size=5, device=CPU) == [[]] * 5


def test_rows_reproduced_teacher_forced_need_no_decoding():
    """A row whose every answer token is the argmax given the answer before it is what greedy
    decoding gives: skipping its decoding changes no answer."""
    data = _ragged_batch(n=9, seed=2)
    model, _ = train_on_answers(tiny_model("gpt2"), data.select(slice(0, 6)), 40, 1e-2, 3, 0.0,
                                0.0, 0, CPU)  # fmt: skip
    scores = answer_token_scores(model, data, 4, CPU, vocab_stats=False)
    reproduced = torch.tensor([bool(row["hit"].all()) for row in scores])
    assert 0 < reproduced.sum() < len(data)  # some rows learnt, some not
    decoded = greedy_answers(model, data, batch_size=4, device=CPU)
    assert greedy_answers(model, data, 4, CPU, reproduced=reproduced) == decoded
    assert [decoded[i] for i in torch.nonzero(reproduced).flatten().tolist()] == [
        reference_answers(data)[i] for i in torch.nonzero(reproduced).flatten().tolist()
    ]
