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
    """One forward pass per batch; per sample, the answer positions' token (and vocab) stats."""
    model.to(device).eval()
    rows: list[dict[str, torch.Tensor]] = []
    for batch in data.batches(batch_size):  # no generator: batches keep the sample order
        logits, targets = answer_token_logits(model, batch.to(device))
        logp = torch.log_softmax(
            logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1
        )
        keep = targets != IGNORE
        stats = {"logprob": logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)}
        if vocab_stats:
            # Min-K%++: moments of log p under the model's own next-token distribution
            p = logp.exp()
            mean = (p * logp).sum(-1)
            # centred form of sum_v p_v (log p_v)^2 - mu^2: no cancellation in float32
            var = (p * (logp - mean.unsqueeze(-1)).square()).sum(-1)
            stats["mean"] = mean
            stats["std"] = var.sqrt()
        for i in range(len(batch)):
            rows.append({name: value[i][keep[i]].cpu() for name, value in stats.items()})
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
    model: nn.Module, data: TokenBatch, batch_size: int, device: torch.device | str
) -> list[dict[str, torch.Tensor]]:
    """Per sample ``{"logprob", "mean", "std"}``, each ``[m]`` over the answer tokens.

    ``mean`` and ``std`` are the mean and standard deviation of ``log p_v`` over the vocabulary
    under the model's next-token distribution at that position, ``mu = sum_v p_v log p_v`` and
    ``sigma = sqrt(sum_v p_v (log p_v)^2 - mu^2)``: the normalisers of Min-K%++ (Zhang et al.
    2024), which need the full distribution and so cannot be recovered from ``logprob`` alone.
    """
    return _per_sample_scores(model, data, batch_size, device, vocab_stats=True)
