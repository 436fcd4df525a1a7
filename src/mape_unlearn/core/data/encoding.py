"""Samples as padded token tensors, for the two task types every stage serves.

Question answering (:class:`QABatch`): a sample is ``[BOS] question [SEP] answer [EOS]``, or
for a tokenizer with a chat template the template's user turn, then ``answer [EOS]``;
``labels`` hold the token ids of ``answer [EOS]`` and -100 elsewhere, aligned with
``input_ids`` (the model predicts position t + 1 from t). The prompt is everything up to and
including ``[SEP]``. A tokenizer without a BOS or SEP token (GPT-2's BPE has neither SEP nor
PAD) leaves it out; padding then uses EOS,
which the attention mask and the labels ignore anyway.

Classification (:class:`LabelBatch`): a sample is a text (or text pair) encoded by the
tokenizer with its own special tokens, and one class label. The label is scored like a
one-token answer (see :meth:`TokenBatch.scored`), so losses, mask gradients, unlearning and the
trace need no task-specific code: answer NLL is the cross-entropy, and answer-token accuracy
and exact match are both the accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal, Self, get_args

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.facts import FACT, fact_span

IGNORE = -100


@dataclass
class TokenBatch:
    """Right-padded samples: ``input_ids`` and ``attention_mask`` ``[n, T]``, and ``labels``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: torch.Tensor | slice) -> Self:
        """The samples at ``index``, with padding columns no sample uses trimmed away."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        width = int(picked["attention_mask"].sum(dim=1).max()) if len(picked["input_ids"]) else 0
        return type(self)(
            **{name: t[:, :width] if t.dim() == 2 else t for name, t in picked.items()}
        )

    def on_facts(self) -> Self:
        """The samples scored on their fact tokens only (see :meth:`QABatch.on_facts`)."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Self:
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Self]:
        """Consecutive batches, shuffled when a ``generator`` is given."""
        order = (
            torch.randperm(len(self), generator=generator)
            if generator is not None
            else torch.arange(len(self))
        )
        for start in range(0, len(self), batch_size):
            yield self.select(order[start : start + batch_size])

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """What the model reads: everything but the labels."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "labels"}

    def targets(self) -> torch.Tensor:
        """The scored targets, ``[n, S]``: IGNORE where nothing is scored."""
        raise NotImplementedError

    def scored(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits at the scored positions, ``[n, S, V]``, and :meth:`targets`."""
        raise NotImplementedError


@dataclass
class QABatch(TokenBatch):
    """Question-answer samples; ``labels`` ``[n, T]`` hold the answer tokens, IGNORE elsewhere,
    and ``fact_labels`` ``[n, T]`` only the fact tokens (docs/method.md §7.1)."""

    fact_labels: torch.Tensor

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    def on_facts(self) -> Self:
        """The same samples scored on their fact tokens only: losses, mask gradients and
        teacher-forced statistics of this view see nothing of the answer's template. (Its
        :meth:`prompt_lengths` is not the prompt's: decode from the full batch.)"""
        return replace(self, labels=self.fact_labels)

    def targets(self) -> torch.Tensor:
        return self.labels[:, 1:]

    def scored(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A causal LM predicts position t + 1 from t."""
        return logits[:, :-1], self.targets()

    def prompt_lengths(self) -> torch.Tensor:
        """Tokens before the first answer token, per sample: ``[n]``."""
        is_answer = self.labels != IGNORE
        return is_answer.float().argmax(dim=1)


@dataclass
class LabelBatch(TokenBatch):
    """Classification samples; ``labels`` ``[n]`` are class indices, ``token_type_ids`` tell
    the two texts of a pair apart."""

    token_type_ids: torch.Tensor

    def on_facts(self) -> Self:
        """A class label is all fact: the batch itself."""
        return self

    def targets(self) -> torch.Tensor:
        return self.labels[:, None]

    def scored(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The class logits ``[n, C]`` as the logits of a one-token answer."""
        return logits[:, None], self.targets()


# which tokens of an answer a loss or a mask gradient scores: the fact's, or all of them
TokenView = Literal["fact", "answer"]
TOKEN_VIEWS: tuple[str, ...] = get_args(TokenView)


def scored_on(data: TokenBatch, tokens: str) -> TokenBatch:
    """``data`` scored on ``tokens`` (one of ``TOKEN_VIEWS``)."""
    if tokens not in TOKEN_VIEWS:
        raise ValueError(f"tokens={tokens!r} is not allowed: expected one of {TOKEN_VIEWS}")
    return data.on_facts() if tokens == "fact" else data


def encode_qa(
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    facts: Sequence[str] | None = None,
) -> QABatch:
    """Tokenise pairs into a :class:`QABatch`; raises if the tokenizer knows none of the words.

    ``facts``: each answer's fact (a substring of it, see :mod:`~mape_unlearn.core.data.facts`); its
    tokens are those whose characters overlap it. Without facts every answer token is one.
    """
    if len(questions) != len(answers):
        raise ValueError(f"got {len(questions)} questions but {len(answers)} answers")
    if len(questions) == 0:
        raise ValueError("cannot encode an empty set of question-answer pairs")
    a_ids = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    is_fact = (
        [[True] * (len(ids) + 1) for ids in a_ids]
        if facts is None
        else _fact_tokens(tokenizer, answers, facts)
    )
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
    rows = [([*p], [*a, eos]) for p, a in zip(prompts(tokenizer, questions), a_ids, strict=True)]
    pad = eos if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    width = max(len(p) + len(a) for p, a in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    fact_labels = labels.clone()
    for i, (prompt, answer) in enumerate(rows):
        n = len(prompt) + len(answer)
        input_ids[i, :n] = torch.tensor(prompt + answer)
        attention_mask[i, :n] = 1
        labels[i, len(prompt) : n] = torch.tensor(answer)
        fact = torch.tensor(is_fact[i])
        fact_labels[i, len(prompt) : n] = torch.where(fact, torch.tensor(answer), IGNORE)
    return QABatch(input_ids, attention_mask, labels, fact_labels)


def prompts(tokenizer: PreTrainedTokenizerBase, questions: Sequence[str]) -> list[list[int]]:
    """The token ids that ask each question: a chat model's user turn and assistant header
    (its chat template), else ``[BOS] question [SEP]``, so a chat model is fine-tuned,
    unlearned and asked in the format it was trained to answer."""
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
            )
            for question in questions
        ]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    bos, sep = _optional(tokenizer.bos_token_id), _optional(tokenizer.sep_token_id)
    ids = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    return [[*bos, *q, *sep] for q in ids]


def _fact_tokens(
    tokenizer: PreTrainedTokenizerBase, answers: Sequence[str], facts: Sequence[str]
) -> list[list[bool]]:
    """Per answer, whether each of its tokens (and the final EOS, never) is a fact token."""
    if len(facts) != len(answers):
        raise ValueError(f"got {len(answers)} answers but {len(facts)} facts")
    if not tokenizer.is_fast:
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} is not a fast tokenizer: fact tokens are "
            "located by character offsets, which only fast tokenizers report"
        )
    offsets = tokenizer(list(answers), add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    flags = []
    for answer, fact, spans in zip(answers, facts, offsets, strict=True):
        start, stop = fact_span(answer, fact)
        row = [a < stop and b > start for a, b in spans]
        flags.append([*(row if any(row) else [True] * len(row)), False])
    return flags


def _optional(token_id: int | None) -> list[int]:
    return [] if token_id is None else [token_id]


def encode_labelled(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: Sequence[int],
    pairs: Sequence[str] | None = None,
) -> LabelBatch:
    """Tokenise texts (and their pair texts) with the tokenizer's own special tokens, cut at
    its ``model_max_length`` and padded on the right (what :meth:`TokenBatch.select` trims)."""
    if len(texts) != len(labels) or (pairs is not None and len(pairs) != len(texts)):
        raise ValueError(
            f"got {len(texts)} texts, {len(labels)} labels"
            + ("" if pairs is None else f" and {len(pairs)} pair texts")
            + ": expected one of each per sample"
        )
    if len(texts) == 0:
        raise ValueError("cannot encode an empty set of labelled texts")
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "the tokenizer has no pad_token: set tokenizer.pad_token and save the tokenizer again"
        )
    encoded = tokenizer(
        list(texts),
        None if pairs is None else list(pairs),
        padding=True,
        padding_side="right",
        truncation=True,
        return_token_type_ids=True,
        return_tensors="pt",
    )
    return LabelBatch(
        input_ids=encoded["input_ids"],
        attention_mask=encoded["attention_mask"],
        labels=torch.tensor([int(label) for label in labels], dtype=torch.long),
        token_type_ids=encoded["token_type_ids"],
    )


def encode_frame(
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    question: str = "question",
    answer: str = "answer",
) -> QABatch | LabelBatch:
    """Encode a split of either task: a ``label`` column makes it classification (``text``,
    optional ``text_pair``), else the ``question`` and ``answer`` columns are encoded, with the
    ``fact`` column's tokens marked when the answer is ``answer`` itself."""
    if "label" in frame.columns:
        pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
        return encode_labelled(tokenizer, frame["text"].tolist(), frame["label"].tolist(), pairs)
    facts = frame[FACT].tolist() if FACT in frame.columns and answer == "answer" else None
    return encode_qa(tokenizer, frame[question].tolist(), frame[answer].tolist(), facts)
