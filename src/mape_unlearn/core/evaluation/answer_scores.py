"""Per-sample answer-token log-probabilities of a causal LM: the raw material of TOFU metrics.

Truth ratio, answer probability and every membership-inference score are functions of the
per-token log-probabilities of an answer, so they are computed once here, per sample and in
sample order, and the metrics in :mod:`~mape_unlearn.core.evaluation.tofu_metrics` stay pure
functions over numbers. Token ``t`` of an answer is scored by the logits at position ``t - 1``
(the same alignment as :func:`~mape_unlearn.core.method.losses.answer_token_logits`), and EOS
counts as an answer token.
"""

from __future__ import annotations

import torch
from torch import nn

from mape_unlearn.core.data.encoding import IGNORE, TokenBatch
from mape_unlearn.core.method.losses import answer_token_logits


def _per_sample_scores(
    model: nn.Module,
    data: TokenBatch,
    batch_size: int,
    device: torch.device | str,
    vocab_stats: bool,
) -> list[dict[str, torch.Tensor]]:
    """One forward pass per batch; per sample, the answer positions' token (and vocab) stats.

    Batches are cut from the samples sorted by length, so a batch pads to a length its samples
    share, and the rows are returned in sample order. The softmax over the vocabulary is taken
    at the answer positions only (a chat prompt is most of a sample's tokens).
    """
    model.to(device).eval()
    rows: list[dict[str, torch.Tensor]] = [{} for _ in range(len(data))]
    order = torch.argsort(data.attention_mask.sum(dim=1), stable=True)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = data.select(index).to(device)
        logits, targets = answer_token_logits(model, batch)
        keep = targets != IGNORE
        kept = logits[keep]  # [answer tokens of the batch, V]
        logp = torch.log_softmax(kept.to(torch.promote_types(kept.dtype, torch.float32)), dim=-1)
        stats = {
            "logprob": logp.gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1),
            "hit": kept.argmax(-1) == targets[keep],  # the token is the model's argmax
            "fact": batch.on_facts().targets()[keep] != IGNORE,  # one of the fact's tokens
        }
        if vocab_stats:
            # Min-K%++: moments of log p under the model's own next-token distribution
            p = logp.exp()
            mean = (p * logp).sum(-1)
            # centred form of sum_v p_v (log p_v)^2 - mu^2: no cancellation in float32
            stats["mean"] = mean
            stats["std"] = (p * (logp - mean.unsqueeze(-1)).square()).sum(-1).sqrt()
        counts = keep.sum(dim=1).tolist()
        split = {name: value.cpu().split(counts) for name, value in stats.items()}
        for i, row in enumerate(index.tolist()):
            rows[row] = {name: values[i] for name, values in split.items()}
    return rows


@torch.no_grad()
def answer_token_logprobs(
    model: nn.Module, data: TokenBatch, batch_size: int, device: torch.device | str
) -> list[torch.Tensor]:
    """Per sample, ``log p(answer token | prefix)`` for each answer token (EOS included), ``[m]``.

    Their sum is minus the sample's answer NLL
    (:func:`~mape_unlearn.core.method.losses.answer_nll`).
    """
    rows = _per_sample_scores(model, data, batch_size, device, vocab_stats=False)
    return [row["logprob"] for row in rows]


@torch.no_grad()
def answer_token_scores(
    model: nn.Module,
    data: TokenBatch,
    batch_size: int,
    device: torch.device | str,
    vocab_stats: bool = True,
) -> list[dict[str, torch.Tensor]]:
    """Per sample ``{"logprob", "hit", "fact", "mean", "std"}``, each ``[m]`` over the answer
    tokens, from one forward pass over ``data`` (``mean`` and ``std`` with ``vocab_stats``).

    ``hit``: the token is the model's most likely next token; ``fact``: it is one of the fact's
    tokens (:meth:`~mape_unlearn.core.data.encoding.TokenBatch.on_facts`); what
    :func:`~mape_unlearn.core.evaluation.metrics.teacher_forced_summary` adds up.

    ``mean`` and ``std`` are the mean and standard deviation of ``log p_v`` over the vocabulary
    under the model's next-token distribution at that position, ``mu = sum_v p_v log p_v`` and
    ``sigma = sqrt(sum_v p_v (log p_v)^2 - mu^2)``: the normalisers of Min-K%++ (Zhang et al.
    2024), which need the full distribution and so cannot be recovered from ``logprob`` alone.
    """
    return _per_sample_scores(model, data, batch_size, device, vocab_stats)
