"""What a model knows of a split: answer and fact NLL, token accuracy, exact greedy answers."""

from __future__ import annotations

import torch
from torch import nn

from mape_unlearn.core.data.encoding import IGNORE, LabelBatch, QABatch, TokenBatch
from mape_unlearn.core.method.losses import answer_token_logits
from mape_unlearn.core.runtime.distributed import all_reduce_sum, local_rows

# what each view of a batch is called in the statistics: the whole answer, its fact tokens
_VIEWS = {"answer": ("answer_nll", "answer_token_accuracy", "exact_match"),
          "fact": ("fact_nll", "fact_accuracy", "fact_exact_match")}  # fmt: skip


@torch.no_grad()
def teacher_forced_stats(
    model: nn.Module, data: TokenBatch, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean NLL, the share of tokens predicted (argmax), and exact match, over the answer
    tokens and over the fact tokens (docs/method.md §7.1), from one forward pass per batch.

    ``exact_match`` is the share of samples whose every answer token (EOS included) is the
    argmax: exactly the samples greedy decoding reproduces. ``fact_exact_match`` asks the same
    of the fact tokens only, the rest of the answer given: whether the model still knows the
    fact, whatever the wording around it.

    Data-parallel under a process group (:mod:`~mape_unlearn.core.runtime.distributed`): each rank
    scores its own rows and one all-reduce adds up the sums, so every rank returns the
    statistics of all of ``data``.
    """
    model.to(device).eval()
    sums = torch.zeros(len(_VIEWS), 4, dtype=torch.float64)  # nll, correct, tokens, exact
    for batch in data.select(local_rows(len(data))).batches(batch_size):
        batch = batch.to(device)
        logits, _ = answer_token_logits(model, batch)
        logp = torch.log_softmax(
            logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1
        )
        predicted = logits.argmax(-1)
        for row, view in zip(sums, (batch, batch.on_facts()), strict=True):
            targets = view.targets()
            keep = targets != IGNORE
            nll = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum()
            hits = (predicted == targets) & keep
            exact = (hits.sum(dim=1) == keep.sum(dim=1)).sum()
            row += torch.tensor([-float(nll), int(hits.sum()), int(keep.sum()), int(exact)])
    sums = all_reduce_sum([sums])[0]  # float64: the counts stay exact
    stats = {}
    for (nll_name, accuracy_name, exact_name), (nll, correct, tokens, exact) in zip(
        _VIEWS.values(), sums.tolist(), strict=True
    ):
        stats |= {nll_name: nll / tokens, accuracy_name: correct / tokens}
        stats[exact_name] = exact / len(data)
    return stats


@torch.no_grad()
def greedy_answers(
    model: nn.Module, data: QABatch, batch_size: int, device: torch.device
) -> list[list[int]]:
    """Greedy continuation of every prompt, up to (not including) the first EOS.

    Decodes for as many tokens as the sample's reference answer plus EOS, so an answer that
    runs on is cut where the reference ends. Samples are grouped by prompt length so each
    group decodes without padding.
    """
    if len(data) == 0:  # a rank's share of a split smaller than the world
        return []
    model.to(device).eval()
    prompt_lengths = data.prompt_lengths()
    answers: list[list[int]] = [[] for _ in range(len(data))]
    for length in prompt_lengths.unique().tolist():
        index = torch.nonzero(prompt_lengths == length).flatten()
        for start in range(0, len(index), batch_size):
            rows = index[start : start + batch_size]
            group = data.select(rows)
            budget = group.labels[:, length:].ne(IGNORE).sum(dim=1)  # answer tokens + EOS
            tokens = _greedy(model, group.input_ids[:, :length].to(device), int(budget.max()))
            eos = group.labels[torch.arange(len(rows)), length + budget - 1]
            for row, generated, stop, limit in zip(
                rows.tolist(), tokens.cpu(), eos.tolist(), budget.tolist(), strict=True
            ):
                ids = generated[:limit].tolist()
                answers[row] = ids[: ids.index(stop)] if stop in ids else ids
    return answers


def _greedy(model: nn.Module, prompt: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """``n_tokens`` greedy tokens after ``prompt`` ``[n, length]``: ``[n, n_tokens]``. The
    key/value cache makes each step one token's work, not the whole sequence's again."""
    output = model(input_ids=prompt, use_cache=True)
    tokens = []
    for step in range(n_tokens):
        tokens.append(output.logits[:, -1].argmax(-1, keepdim=True))
        if step + 1 < n_tokens:
            output = model(input_ids=tokens[-1], cache=output.cache, use_cache=True)
    return torch.cat(tokens, dim=1)


@torch.no_grad()
def predicted_labels(
    model: nn.Module, data: LabelBatch, batch_size: int, device: torch.device
) -> torch.Tensor:
    """The classifier's most likely class of every sample, ``[n]``: its "greedy answer"."""
    model.to(device).eval()
    predicted = [torch.zeros(0, dtype=torch.long)]
    for batch in data.batches(batch_size):
        predicted.append(model(**batch.to(device).model_inputs()).logits.argmax(-1).cpu())
    return torch.cat(predicted)


def reference_answers(data: QABatch) -> list[list[int]]:
    """The answer tokens of every sample, without the final EOS."""
    return [row[row != IGNORE][:-1].tolist() for row in data.labels]
