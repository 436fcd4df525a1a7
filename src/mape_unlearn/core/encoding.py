"""Question-answer pairs as padded token tensors whose loss covers answer tokens only.

A sample is ``[BOS] question [SEP] answer [EOS]``; ``labels`` hold the token ids of
``answer [EOS]`` and -100 elsewhere, aligned with ``input_ids`` (the model predicts position
t + 1 from t). The prompt is everything up to and including ``[SEP]``. A tokenizer without a
BOS or SEP token (GPT-2's BPE has neither SEP nor PAD) leaves it out; padding then uses EOS,
which the attention mask and the labels ignore anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100


@dataclass
class QABatch:
    """Right-padded samples: ``input_ids``, ``attention_mask``, ``labels``, all ``[n, T]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: torch.Tensor | slice) -> QABatch:
        """The samples at ``index``, with padding columns no sample uses trimmed away."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        width = int(picked["attention_mask"].sum(dim=1).max()) if len(picked["input_ids"]) else 0
        return QABatch(**{name: t[:, :width] for name, t in picked.items()})

    def to(self, device: torch.device | str) -> QABatch:
        return QABatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[QABatch]:
        """Consecutive batches, shuffled when a ``generator`` is given."""
        order = (
            torch.randperm(len(self), generator=generator)
            if generator is not None
            else torch.arange(len(self))
        )
        for start in range(0, len(self), batch_size):
            yield self.select(order[start : start + batch_size])

    def prompt_lengths(self) -> torch.Tensor:
        """Tokens before the first answer token, per sample: ``[n]``."""
        is_answer = self.labels != IGNORE
        return is_answer.float().argmax(dim=1)


def encode_qa(
    tokenizer: PreTrainedTokenizerBase, questions: Sequence[str], answers: Sequence[str]
) -> QABatch:
    """Tokenise pairs into a :class:`QABatch`; raises if the tokenizer knows none of the words."""
    if len(questions) != len(answers):
        raise ValueError(f"got {len(questions)} questions but {len(answers)} answers")
    if len(questions) == 0:
        raise ValueError("cannot encode an empty set of question-answer pairs")
    q_ids = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    words = [t for seq in a_ids for t in seq]
    if unk is not None and words and all(t == unk for t in words):
        raise ValueError(
            "the tokenizer cannot encode the data: every answer token is unknown "
            f"({tokenizer.unk_token!r}); train or choose a tokenizer that covers this data"
        )
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(
            "the tokenizer has no eos_token: every answer must end with one; set "
            "tokenizer.eos_token and save the tokenizer again"
        )
    bos, sep = _optional(tokenizer.bos_token_id), _optional(tokenizer.sep_token_id)
    rows = [([*bos, *q, *sep], [*a, eos]) for q, a in zip(q_ids, a_ids, strict=True)]
    pad = eos if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    width = max(len(p) + len(a) for p, a in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (prompt, answer) in enumerate(rows):
        n = len(prompt) + len(answer)
        input_ids[i, :n] = torch.tensor(prompt + answer)
        attention_mask[i, :n] = 1
        labels[i, len(prompt) : n] = torch.tensor(answer)
    return QABatch(input_ids, attention_mask, labels)


def _optional(token_id: int | None) -> list[int]:
    return [] if token_id is None else [token_id]


def encode_frame(
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    question: str = "question",
    answer: str = "answer",
) -> QABatch:
    """Encode the question and answer columns of a split."""
    return encode_qa(tokenizer, frame[question].tolist(), frame[answer].tolist())
