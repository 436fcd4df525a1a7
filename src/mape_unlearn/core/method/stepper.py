"""One unlearning step (docs/method.md §4): the rule's gradients (core/method/rules.py), added
up over ranks and masked to the selected weights, for ``optimizer: sam`` taken again at the
sharpness-aware perturbation of the weights, the optimiser's update — Adam, or for ``so`` a
damped Newton step with the diagonal retain Fisher — and the restore after a non-finite loss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.method.losses import mean_answer_nll
from mape_unlearn.core.method.rules import loss_backward
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.distributed import all_reduce_sum, rank_and_world, shard_bounds

log = logging.getLogger(__name__)

# a loss's backward pass on this rank's rows, returning this rank's shares of its values,
# detached (rules.loss_backward, rules.weighted_nll_backward)
Backward = Callable[[], list[torch.Tensor]]


class Stepper:
    """One optimisation step: gradients of both terms, summed over ranks and masked, for
    ``sam`` those at the perturbed weights, the Newton direction for ``so``, the update; a
    non-finite loss restores the last weights."""

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
        s = self.settings
        backward = partial(
            loss_backward, self.model, self.reference, forget, retain, s, self.never_seen
        )
        forget_part, retain_part, forget_loss, retain_loss = gradients(
            self.trainable, self.masks, backward
        )
        start = weights_of(self.trainable)
        finite = bool(torch.isfinite(forget_part + retain_part))
        if finite and s.optimizer == "sam":
            forget_part, retain_part, *_ = perturbed_gradients(
                self.trainable, self.masks, backward, s.rho, start
            )
            finite = bool(torch.isfinite(forget_part + retain_part))
        if not finite:
            restore(self.trainable, self.last_finite, step)
            return {"step": step, "stopped_non_finite": 1.0}
        if self.curvature:
            _newton_direction(self.trainable, self.curvature, self.masks)
        self.last_finite = start
        self.optimizer.step()
        return {"step": step, "forget_loss": forget_loss.item(), "retain_loss": retain_loss.item()}


def gradients(
    trainable: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], backward: Backward
) -> list[torch.Tensor]:
    """``backward``'s gradients on the trainable tensors, added up over ranks and multiplied
    by ``masks`` (a tensor without one is selected whole); returns its losses added up over
    ranks: the whole batches' values, the same on every rank, so every rank stops at one step.
    """
    for tensor in trainable.values():
        tensor.grad = None
    losses = all_reduce_sum(backward())
    _sum_gradients(list(trainable.values()))
    for name, mask in masks.items():
        trainable[name].grad.mul_(mask)
    return losses


def perturbed_gradients(
    trainable: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    backward: Backward,
    rho: float,
    start: dict[str, torch.Tensor],
) -> list[torch.Tensor]:
    """SAM (Foret et al. 2021): replace the gradient ``g`` the trainable tensors hold (summed
    and masked) by ``backward``'s gradient at ``w + rho g / ||g||``, then put the weights back
    to ``start`` (a copy of ``w``) bit for bit; returns the losses there.

    ``||g||`` is the norm over the trainable entries only (selected entries of a masked tensor,
    the deltas of compact slices), the same on every rank (the summed gradient): the
    perturbation is the steepest ascent of the loss within radius ``rho`` of the weights that
    may change, and a frozen entry, whose masked gradient is 0, does not move.
    """
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack([t.grad.norm() for t in trainable.values()]))
        scale = rho / norm.clamp(min=1e-12)
        for tensor in trainable.values():
            tensor.add_(tensor.grad * scale)
    losses = gradients(trainable, masks, backward)
    with torch.no_grad():
        for name, tensor in trainable.items():
            tensor.copy_(start[name])
    return losses


def weights_of(trainable: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of the trainable tensors: where a perturbation or a non-finite loss returns to."""
    return {name: tensor.detach().clone() for name, tensor in trainable.items()}


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
    """
    return batch_gradient_sum(model, retain, tensors, batch_size, device, torch.square)


def batch_gradient_sum(
    model: nn.Module,
    data: TokenBatch,
    tensors: dict[str, torch.Tensor],
    batch_size: int,
    device: torch.device,
    term: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``sum_b term(g_b) |b| / n_batches`` over ``data``'s batches ``b`` of ``batch_size``,
    ``g_b`` the gradient of the batch's mean answer NLL on ``tensors`` (parameters or compact
    deltas): the mean gradient times ``len(data) / n_batches`` for ``term`` the identity.

    Each rank takes a contiguous share of whole batches (their gradients are those of one
    process) and one all-reduce adds up the ranks' terms.
    """
    total = {name: torch.zeros_like(t) for name, t in tensors.items()}
    batches = list(data.batches(batch_size))
    start, stop = shard_bounds(len(batches), *rank_and_world())
    for batch in batches[start:stop]:
        model.zero_grad(set_to_none=True)
        for t in tensors.values():
            t.grad = None
        mean_answer_nll(model, batch.to(device)).backward()
        for name, t in tensors.items():
            if t.grad is not None:
                total[name] += term(t.grad) * len(batch) / len(batches)
    model.zero_grad(set_to_none=True)
    for t in tensors.values():
        t.grad = None
    return dict(zip(total, all_reduce_sum(list(total.values())), strict=True))


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
def restore(
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
