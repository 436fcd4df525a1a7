"""What a model knows of a split: answer NLL, answer-token accuracy, exact greedy answers."""

from __future__ import annotations

import torch
from torch import nn

from mape_unlearn.core.encoding import IGNORE, QABatch
from mape_unlearn.core.losses import answer_token_logits


@torch.no_grad()
def teacher_forced_stats(
    model: nn.Module, data: QABatch, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean answer-token NLL and the share of answer tokens predicted exactly (argmax)."""
    model.to(device).eval()
    nll, correct, tokens = 0.0, 0, 0
    for batch in data.batches(batch_size):
        logits, targets = answer_token_logits(model, batch.to(device))
        keep = targets != IGNORE
        logp = torch.log_softmax(
            logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1
        )
        nll -= float(logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum())
        correct += int((logits.argmax(-1) == targets)[keep].sum())
        tokens += int(keep.sum())
    return {"answer_nll": nll / tokens, "answer_token_accuracy": correct / tokens}


@torch.no_grad()
def greedy_exact_match(
    model: nn.Module, data: QABatch, batch_size: int, device: torch.device
) -> float:
    """Share of samples whose greedy continuation of the prompt is the answer, then EOS.

    Samples are grouped by prompt length so each group decodes without padding.
    """
    model.to(device).eval()
    prompt_lengths = data.prompt_lengths()
    hits = 0
    for length in prompt_lengths.unique().tolist():
        index = torch.nonzero(prompt_lengths == length).flatten()
        for start in range(0, len(index), batch_size):
            group = data.select(index[start : start + batch_size])
            answers = group.labels[:, length:]  # answer tokens then EOS, then IGNORE padding
            tokens = group.input_ids[:, :length].to(device)
            for _ in range(answers.shape[1]):
                next_token = model(input_ids=tokens).logits[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, next_token], dim=1)
            generated = tokens[:, length:].cpu()
            expected = answers != IGNORE
            hits += int(((generated == answers) | ~expected).all(dim=1).sum())
    return hits / len(data)


def answer_metrics(
    model: nn.Module, data: QABatch, batch_size: int, device: torch.device
) -> dict[str, float]:
    """All answer metrics of one split."""
    return {
        **teacher_forced_stats(model, data, batch_size, device),
        "exact_match": greedy_exact_match(model, data, batch_size, device),
    }
