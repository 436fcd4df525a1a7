"""One unlearning step (docs/method.md §4): the rule's gradients (core/method/rules.py), added
up over ranks and masked to the selected weights, the optimiser's update — Adam, or for ``so``
a damped Newton step with the diagonal retain Fisher — and the restore after a non-finite loss.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.method.rules import loss_backward
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.distributed import all_reduce_sum, rank_and_world, shard_bounds

log = logging.getLogger(__name__)


class Stepper:
    """One optimisation step: gradients of both terms, summed over ranks and masked, the
    Newton direction for ``so``, the update; a non-finite loss restores the last weights."""

    def __init__(
        self,
        model: nn.Module,
        reference: nn.Module | None,
        optimizer: torch.optim.Optimizer,
        trainable: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        curvature: dict[str, torch.Tensor],
        settings: UnlearnSettings,
        never_seen: torch.Tensor | None = None,
    ) -> None:
        self.model, self.reference, self.optimizer = model, reference, optimizer
        self.never_seen = never_seen  # the never-seen NLL per answer (bounded, match)
        self.trainable, self.masks, self.curvature = trainable, masks, curvature
        self.settings = settings
        self.last_finite: dict[str, torch.Tensor] = {}

    def __call__(self, step: int, forget: TokenBatch, retain: TokenBatch) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        losses = loss_backward(
            self.model, self.reference, forget, retain, self.settings, self.never_seen
        )
        # the ranks' shares add up to the whole batches' values: every rank stops at one step
        forget_part, retain_part, forget_loss, retain_loss = all_reduce_sum(losses)
        if not torch.isfinite(forget_part + retain_part):
            _restore(self.trainable, self.last_finite, step)
            return {"step": step, "stopped_non_finite": 1.0}
        _sum_gradients(list(self.trainable.values()))
        for name, mask in self.masks.items():
            self.trainable[name].grad.mul_(mask)
        if self.curvature:
            _newton_direction(self.trainable, self.curvature, self.masks)
        self.last_finite = {name: p.detach().clone() for name, p in self.trainable.items()}
        self.optimizer.step()
        return {"step": step, "forget_loss": forget_loss.item(), "retain_loss": retain_loss.item()}


def make_optimizer(
    model: nn.Module,
    retain: TokenBatch,
    trainable: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    s: UnlearnSettings,
    device: torch.device,
) -> tuple[torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """Adam, or for ``so`` plain steps along the Newton direction of the damped diagonal
    retain Fisher (returned as the curvature; empty for the other rules)."""
    if s.rule != "so":
        return torch.optim.Adam(trainable.values(), lr=s.lr, weight_decay=0.0), {}
    fisher = diagonal_retain_fisher(model, retain, trainable, s.batch_size, device)
    selected = [fisher[n][masks[n]] if n in masks else fisher[n].flatten() for n in fisher]
    mean = float(torch.cat(selected).mean()) if selected else 1.0
    damping = s.damping * mean + torch.finfo(torch.float32).tiny
    curvature = {name: f.add_(damping) for name, f in fisher.items()}  # in place: no copy
    return torch.optim.SGD(trainable.values(), lr=s.lr), curvature


def diagonal_retain_fisher(
    model: nn.Module,
    retain: TokenBatch,
    tensors: dict[str, torch.Tensor],
    batch_size: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of the retain NLL on trainable tensors, parameters or compact
    deltas (``so``'s curvature).

    Mini-batch gradients stand in for per-sample ones: at a trained model the mean gradient is
    near 0, so ``B * E[mean-batch grad^2]`` estimates ``E[per-sample grad^2]``.

    Each rank takes a contiguous share of whole batches (their gradients are those of one
    process) and one all-reduce adds up the ranks' terms.
    """
    fisher = {name: torch.zeros_like(t) for name, t in tensors.items()}
    batches = list(retain.batches(batch_size))
    start, stop = shard_bounds(len(batches), *rank_and_world())
    for batch in batches[start:stop]:
        model.zero_grad(set_to_none=True)
        for t in tensors.values():
            t.grad = None
        mean_answer_nll(model, batch.to(device)).backward()
        for name, t in tensors.items():
            if t.grad is not None:
                fisher[name] += t.grad.pow(2) * len(batch) / len(batches)
    model.zero_grad(set_to_none=True)
    for t in tensors.values():
        t.grad = None
    return dict(zip(fisher, all_reduce_sum(list(fisher.values())), strict=True))


def _sum_gradients(tensors: list[torch.Tensor]) -> None:
    """Add up the ranks' gradients, each that of its share of the loss, in one collective: every
    rank then holds the whole batch's gradient. A rank with no rows adds zeros."""
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in tensors]
    for t, grad in zip(tensors, all_reduce_sum(grads), strict=True):
        t.grad = grad


@torch.no_grad()
def _newton_direction(
    params: dict[str, torch.Tensor],
    curvature: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
) -> None:
    """Replace each gradient by ``g / curvature``, scaled to unit RMS over the selected entries.

    ``so``: a damped Newton step on ``-L(f)`` with the diagonal retain Fisher as curvature,
    ``d = grad L(f) / (F_r + damping * mean F_r)``, which moves least the weights the retain
    set depends on, taken with length ``lr`` (``theta += lr * d / rms(d)``: a trust region,
    since the empirical Fisher of a converged model is tiny and a raw Newton step would be
    huge). ``masks`` holds the partially selected tensors; every entry of the others is selected.
    """
    squares, count = 0.0, 0
    for name, param in params.items():
        param.grad.div_(curvature[name])
        squares += float(param.grad.pow(2).sum())
        count += int(masks[name].sum()) if name in masks else param.numel()
    rms = math.sqrt(squares / max(count, 1))
    if rms > 0:
        for param in params.values():
            param.grad.div_(rms)


@torch.no_grad()
def _restore(
    trainable: dict[str, torch.Tensor], last_finite: dict[str, torch.Tensor], step: int
) -> None:
    """Put back the weights of the last step whose loss was finite."""
    for name, weights in last_finite.items():
        trainable[name].copy_(weights)
    log.warning(
        "non-finite loss at step %d: stopped, weights restored to those of step %d",
        step,
        step - 1,
    )
