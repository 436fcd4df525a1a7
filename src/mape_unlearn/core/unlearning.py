"""Masked unlearning: update only the weight slices of the selected modules (METHOD.md §4).

Gradients are multiplied by 0/1 parameter masks before every Adam step (weight decay 0), so a
frozen entry's first and second moments stay 0 and its update is exactly 0: frozen weights are
bit-identical after unlearning. Parameters with no selected entry get no gradient at all.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mape_unlearn.core.encoding import QABatch
from mape_unlearn.core.losses import answer_nll, mean_answer_nll
from mape_unlearn.core.metrics import teacher_forced_stats

log = logging.getLogger(__name__)

RULES: tuple[str, ...] = ("ga", "gd", "npo")


def forget_term(
    rule: str, model: nn.Module, reference: nn.Module, batch: QABatch, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forget part of the loss to minimise, and the batch's mean answer NLL (for the trace).

    ``ga``/``gd``: minus the mean answer NLL (gradient ascent). ``npo``: negative preference
    optimisation (Zhang et al. 2024), ``-(2/beta) * mean log sigmoid(-beta * log(pi/pi_ref))``
    with sequence log-probabilities over answer tokens and the original model as reference:
    bounded, so it slows down instead of diverging once the forget set is unlikely.
    """
    nll, counts = answer_nll(model, batch)
    mean_nll = nll.sum() / counts.sum().clamp(min=1)
    if rule != "npo":
        return -mean_nll, mean_nll
    with torch.no_grad():
        reference_nll, _ = answer_nll(reference, batch)
    log_ratio = reference_nll - nll  # log pi(y|x) - log pi_ref(y|x)
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean(), mean_nll


def _endless(data: QABatch, batch_size: int, generator: torch.Generator) -> Iterator[QABatch]:
    while True:
        yield from data.batches(batch_size, generator)


def masked_unlearn(
    model: nn.Module,
    forget: QABatch,
    retain: QABatch,
    parameter_masks: dict[str, torch.Tensor],
    rule: str,
    lr: float,
    max_steps: int,
    alpha: float,
    batch_size: int,
    eval_every: int,
    target_forget_accuracy: float | None,
    seed: int,
    device: torch.device,
    beta: float = 0.1,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Unlearn ``forget`` from a copy of ``model``; returns it and the per-step trace.

    ``ga`` ascends the forget loss; ``gd`` (gradient difference) minimises
    ``-L(D_f) + alpha * L(D_r)``; ``npo`` minimises ``NPO(D_f) + alpha * L(D_r)`` against the
    original model (see :func:`forget_term`). Stops after ``max_steps``, when the forget
    answer-token accuracy reaches ``target_forget_accuracy`` (checked every ``eval_every``
    steps), or at the first non-finite loss, keeping the last finite weights.
    """
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not allowed: expected one of {RULES}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed: expected a positive number")
    if not (isinstance(max_steps, int) and max_steps > 0):
        raise ValueError(f"max_steps={max_steps!r} is not allowed: expected a positive integer")
    reference = model.to(device).eval() if rule == "npo" else model  # never optimised
    model = copy.deepcopy(model).to(device).eval()  # dropout off: steps depend on data alone
    masks = {name: mask.to(device) for name, mask in parameter_masks.items()}
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in masks)
        if name in masks:
            trainable.append(param)
    optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    forget_batches = _endless(forget, batch_size, generator)
    retain_batches = _endless(retain, batch_size, generator)
    weight = 0.0 if rule == "ga" else alpha
    trace: list[dict[str, float]] = []
    progress = tqdm(itertools.count(1), total=max_steps, desc="unlearn", leave=False)
    for step in progress:
        forget_part, forget_loss = forget_term(
            rule, model, reference, next(forget_batches).to(device), beta
        )
        retain_loss = mean_answer_nll(model, next(retain_batches).to(device))
        loss = forget_part + weight * retain_loss
        if not torch.isfinite(loss):
            log.warning(
                "non-finite loss at step %d: stopped, keeping the last finite weights", step
            )
            trace.append({"step": step, "stopped_non_finite": 1.0})
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for name, param in model.named_parameters():
            if name in masks:
                param.grad.mul_(masks[name])
        optimizer.step()
        entry = {"step": step, "forget_loss": forget_loss.item(), "retain_loss": retain_loss.item()}
        done = step >= max_steps
        if step % eval_every == 0 or done:
            stats = teacher_forced_stats(model, forget, batch_size, device)
            entry["forget_accuracy"] = stats["answer_token_accuracy"]
            if (
                target_forget_accuracy is not None
                and entry["forget_accuracy"] <= target_forget_accuracy
            ):
                done = True
        trace.append(entry)
        if done:
            break
    progress.close()
    for param in model.parameters():
        param.requires_grad_(True)
    log.info("unlearned for %d steps (%s), %d trainable tensors", step, rule, len(trainable))
    return model, trace
