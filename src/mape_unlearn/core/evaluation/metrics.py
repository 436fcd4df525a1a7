"""What a model knows of a split: answer and fact NLL, token accuracy, exact greedy answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mape_unlearn.core.data.encoding import IGNORE, QABatch, TokenBatch
from mape_unlearn.core.evaluation.answer_scores import answer_token_scores
from mape_unlearn.core.runtime.distributed import all_reduce_sum, local_rows

# what each view of a batch is called in the statistics: the whole answer, its fact tokens
_VIEWS = {"answer": ("answer_nll", "answer_token_accuracy", "exact_match"),
          "fact": ("fact_nll", "fact_accuracy", "fact_exact_match")}  # fmt: skip


@torch.no_grad()
def teacher_forced_stats(
    model: nn.Module, data: TokenBatch, batch_size: int, device: torch.device
) -> dict[str, float]:
    """:func:`teacher_forced_summary` of ``data``, from one forward pass per batch.

    Data-parallel under a process group (:mod:`~mape_unlearn.core.runtime.distributed`): each
    rank scores its own rows, and every rank returns the statistics of all of ``data``.
    """
    local = data.select(local_rows(len(data)))
    scores = answer_token_scores(model, local, batch_size, device, vocab_stats=False)
    return teacher_forced_summary(scores, len(data))


def teacher_forced_summary(
    scores: Sequence[dict[str, torch.Tensor]], n_samples: int
) -> dict[str, float]:
    """Mean NLL, the share of tokens predicted (argmax), and exact match, over the answer
    tokens and over the fact tokens (docs/method.md §7.1), of ``n_samples`` rows whose
    :func:`~mape_unlearn.core.evaluation.answer_scores.answer_token_scores` are ``scores``.

    ``exact_match`` is the share of samples whose every answer token (EOS included) is the
    argmax: exactly the samples greedy decoding reproduces. ``fact_exact_match`` asks the same
    of the fact tokens only, the rest of the answer given: whether the model still knows the
    fact, whatever the wording around it.

    Under a process group ``scores`` are this rank's rows and one all-reduce adds up the sums
    (a collective: every rank calls it), so every rank returns the statistics of all rows.
    """
    sums = torch.zeros(len(_VIEWS), 4, dtype=torch.float64)  # nll, correct, tokens, exact
    for row in scores:
        for view, keep in zip(sums, (torch.ones_like(row["fact"]), row["fact"]), strict=True):
            hits = row["hit"][keep]
            nll = -float(row["logprob"][keep].double().sum())
            view += torch.tensor([nll, int(hits.sum()), len(hits), int(bool(hits.all()))])
    sums = all_reduce_sum([sums])[0]  # float64: the counts stay exact
    stats = {}
    for (nll_name, accuracy_name, exact_name), (nll, correct, tokens, exact) in zip(
        _VIEWS.values(), sums.tolist(), strict=True
    ):
        stats |= {nll_name: nll / tokens, accuracy_name: correct / tokens}
        stats[exact_name] = exact / n_samples
    return stats


@torch.no_grad()
def greedy_answers(
    model: nn.Module,
    data: QABatch,
    batch_size: int,
    device: torch.device,
    reproduced: torch.Tensor | None = None,
) -> list[list[int]]:
    """Greedy continuation of every prompt, up to (not including) the first EOS.

    Decodes for as many tokens as the sample's reference answer plus EOS, so an answer that
    runs on is cut where the reference ends. Prompts of different lengths decode together,
    left-padded; batches are cut from the rows sorted by prompt length, so padding stays short.
    ``reproduced`` ``[n]`` (bool) marks rows whose every answer token is the model's argmax
    given the answer before it (teacher-forced exact match, ``hit`` of
    :func:`~mape_unlearn.core.evaluation.answer_scores.answer_token_scores`): greedy decoding
    follows exactly that path, so their answer is the reference, with no decoding.
    """
    answers = reference_answers(data)
    if reproduced is None:
        reproduced = torch.zeros(len(data), dtype=torch.bool)
    todo = torch.nonzero(~reproduced).flatten()
    if len(todo) == 0:  # every row reproduced, or a rank's empty share of a small split
        return answers
    model.to(device).eval()
    lengths = data.prompt_lengths()
    budgets = data.labels.ne(IGNORE).sum(dim=1)  # answer tokens + EOS
    stops = data.labels[torch.arange(len(data)), lengths + budgets - 1]  # each answer's EOS
    order = todo[torch.argsort(lengths[todo], stable=True)]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        prompt, mask = _left_padded(data.input_ids[rows], lengths[rows])
        tokens = _greedy(model, prompt.to(device), mask.to(device), int(budgets[rows].max()))
        for row, generated in zip(rows.tolist(), tokens.cpu(), strict=True):
            ids = generated[: budgets[row]].tolist()
            stop = int(stops[row])
            answers[row] = ids[: ids.index(stop)] if stop in ids else ids
    return answers


def _left_padded(
    input_ids: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``lengths`` tokens of each row of ``input_ids`` ``[n, T]``, moved to the right
    end of ``[n, max(lengths)]``, and the attention mask that hides the padding on their left."""
    width = int(lengths.max())
    shift = (width - lengths).unsqueeze(1)  # [n, 1]
    columns = torch.arange(width).unsqueeze(0)  # [1, width]
    source = (columns - shift).clamp(min=0)  # the padding repeats each row's first token
    return input_ids.gather(1, source), (columns >= shift).long()


def _greedy(
    model: nn.Module, prompt: torch.Tensor, mask: torch.Tensor, n_tokens: int
) -> torch.Tensor:
    """``n_tokens`` greedy tokens after the left-padded ``prompt`` ``[n, length]`` (``mask``
    0 on the padding): ``[n, n_tokens]``. The key/value cache makes each step one token's
    work, not the whole sequence's again; the positions count real tokens only, so a padded
    row is decoded as it would be alone."""
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    output = model(input_ids=prompt, attention_mask=mask, position_ids=positions, use_cache=True)
    tokens = []
    for step in range(n_tokens):
        tokens.append(output.logits[:, -1].argmax(-1, keepdim=True))
        if step + 1 < n_tokens:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            output = model(
                input_ids=tokens[-1],
                attention_mask=mask,
                position_ids=positions,
                cache=output.cache,
                use_cache=True,
            )
    return torch.cat(tokens, dim=1)


def reference_answers(data: QABatch) -> list[list[int]]:
    """The answer tokens of every sample, without the final EOS."""
    return [row[row != IGNORE][:-1].tolist() for row in data.labels]
