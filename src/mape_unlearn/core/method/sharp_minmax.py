"""Sharp MinMax (Tang & Khanna 2025, "Sharpness-Aware Machine Unlearning"; docs/method.md §4):
the selected weights split in two by forget-set saliency, a sharpness-aware minimisation of the
retain loss on one part and a sharpness-maximising ascent of the forget loss on the other.

The paper's reading: SAM flattens the loss around the retain set, which keeps utility, while a
sharp loss around the forget set makes it easy to move off; the saliency split keeps the two
updates on different weights, so neither undoes the other.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.method.rules import weighted_nll_backward
from mape_unlearn.core.method.selection import top_k_masks
from mape_unlearn.core.method.stepper import (
    Backward,
    batch_gradient_sum,
    gradients,
    perturbed_gradients,
    restore,
    weights_of,
)
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings

Part = dict[str, torch.Tensor]  # boolean masks of the trainable tensors' entries


def saliency_split(
    model: nn.Module,
    forget: TokenBatch,
    trainable: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    batch_size: int,
    device: torch.device,
) -> tuple[Part, Part]:
    """The selected entries split into a retain part and a forget part: the forget part is the
    half (rounded up) with the largest ``|gradient of the forget NLL|`` over the whole forget
    set at the weights as given, the rest the retain part.

    SalUn's saliency, taken within the selection: the weights that carry the forget set most
    are the ones to push it off, the rest keep the retain set. For a module mask the entries are
    those of its slices (the compact deltas), for an element mask the selected entries
    (``masks``: the partly selected tensors; every entry of the others is selected). Half, as a
    selection is already the small share of the weights a method updates. The authors' public
    mask script ranks ascending and so keeps the *smallest* ``|g|``, the reverse of SalUn's
    and of the paper's description; the largest are kept here.
    """
    gradient = batch_gradient_sum(model, forget, trainable, batch_size, device, torch.clone)
    selected = {n: masks.get(n, torch.ones_like(t, dtype=torch.bool)) for n, t in trainable.items()}
    # -1 below every |g|: an entry outside the selection is never taken, even at |g| = 0 ties
    score = {n: torch.where(selected[n], g.abs(), -1.0) for n, g in gradient.items()}
    half = math.ceil(sum(int(m.sum()) for m in selected.values()) / 2)
    forget_part = {n: m.to(device) for n, m in top_k_masks(score, half).items()}
    retain_part = {n: selected[n] & ~forget_part[n] for n in trainable}
    return retain_part, forget_part


class SharpMinMax:
    """The ``sharp_minmax`` step: a retain update, then a forget update, each on its own part
    of the weights with its own Adam (an Adam's state and update stay 0 off its part).

    Retain part: SAM on ``minmax_alpha L(r)``, the step along the gradient at
    ``w + rho g / ||g||``. Forget part: ``-(1 - minmax_alpha) L(f)``, the step along
    ``g - minmax_lambda (g_perturbed - g)``: descent on the loss, ascent on its sharpness
    ``L(w + e) - L(w)`` (the norms and perturbations over each part's entries only). A
    non-finite loss on either side restores the weights of the last finite step.
    """

    def __init__(
        self,
        model: nn.Module,
        trainable: dict[str, torch.Tensor],
        parts: tuple[Part, Part],
        settings: UnlearnSettings,
    ) -> None:
        self.model, self.trainable, self.settings = model, trainable, settings
        self.retain_part, self.forget_part = parts
        self.retain_optimizer, self.forget_optimizer = (
            torch.optim.Adam(trainable.values(), lr=settings.lr, weight_decay=0.0) for _ in range(2)
        )
        # a first step's forget side may fail after its retain side moved the weights
        self.last_finite = weights_of(trainable)

    def __call__(self, step: int, forget: TokenBatch, retain: TokenBatch) -> dict[str, float]:
        s = self.settings
        start = weights_of(self.trainable)
        retain_backward = partial(weighted_nll_backward, self.model, retain, s.minmax_alpha)
        retain_loss = self._half_step(retain_backward, self.retain_part, self.retain_optimizer, 1.0)
        forget_loss = None
        if retain_loss is not None:
            weight = -(1 - s.minmax_alpha)
            forget_backward = partial(weighted_nll_backward, self.model, forget, weight)
            sharpness = -s.minmax_lambda
            forget_loss = self._half_step(
                forget_backward, self.forget_part, self.forget_optimizer, sharpness
            )
        if retain_loss is None or forget_loss is None:
            restore(self.trainable, self.last_finite, step)
            return {"step": step, "stopped_non_finite": 1.0}
        self.last_finite = start
        return {"step": step, "forget_loss": forget_loss, "retain_loss": retain_loss}

    def _half_step(
        self, backward: Backward, part: Part, optimizer: torch.optim.Optimizer, weight: float
    ) -> float | None:
        """One update of ``part`` along ``g + weight (g_perturbed - g)`` (``weight`` 1: SAM's
        gradient at the perturbation); the NLL at the weights it started from, or None when a
        loss was not finite."""
        loss, nll = gradients(self.trainable, part, backward)
        if not torch.isfinite(loss):
            return None
        at_weights = {name: t.grad for name, t in self.trainable.items()}
        loss, _ = perturbed_gradients(
            self.trainable, part, backward, self.settings.rho, weights_of(self.trainable)
        )
        if not torch.isfinite(loss):
            return None
        for name, t in self.trainable.items():
            t.grad = torch.lerp(at_weights[name], t.grad, weight)
        optimizer.step()
        return nll.item()
