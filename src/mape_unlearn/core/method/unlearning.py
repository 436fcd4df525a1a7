"""Masked unlearning: update only the weight slices of the selected modules (docs/method.md §4).

Two exact paths, chosen per tensor. Compact (``core/method/compact.py``): a mask that selects
whole rows or columns of a projection (every module mask) trains only those slices, as small
deltas, so gradients and Adam state exist only for the selected entries. Dense: any other mask
(``salun``, ``sa`` element masks, ``full``) multiplies the full gradient by the 0/1 mask before
every step (weight decay 0), so a frozen entry's optimiser state stays 0 and its update is
exactly 0. Either way frozen weights are bit-identical after unlearning; parameters with no
selected entry get no gradient at all.

Data-parallel under a ``torch.distributed`` process group
(:mod:`~mape_unlearn.core.runtime.distributed`):
every rank draws the same batches (one seeded generator) and computes the loss of its own rows
of each, normalised by the whole batch's counts, so the ranks' losses add up to the
one-process loss; one all-reduce of the gradients then gives every rank the whole batch's
gradient and every rank takes the same step. The weights, the trace and the stop are those of
one process, to float rounding.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from mape_unlearn.core.data.encoding import TokenBatch, scored_on
from mape_unlearn.core.method.compact import CompactUpdate, compact_slices
from mape_unlearn.core.method.sharp_minmax import SharpMinMax, saliency_split
from mape_unlearn.core.method.stepper import Stepper, make_optimizer
from mape_unlearn.core.method.stopping import (
    DISTRIBUTION_METRICS,
    Levels,
    nothing_to_unlearn,
    reached,
    steps_to_next_check,
)
from mape_unlearn.core.method.unlearn_settings import (
    NEVER_SEEN_RULES,
    RULES,
    STOP_METRICS,
    UnlearnSettings,
)

log = logging.getLogger(__name__)


def optimizer_state_bytes(
    model: nn.Module, masks: dict[str, torch.Tensor], rule: str, *, compact: bool = True
) -> int:
    """Bytes of gradients and optimiser state held for the trainable tensors.

    Adam keeps a gradient and two moments per trainable entry: every entry of a dense-path
    tensor with a selected entry, only the selected slice of a compact one (as
    :func:`masked_unlearn` with the same ``compact`` trains them); ``so`` keeps a gradient and
    the Fisher, ``sharp_minmax`` a gradient and two Adams' moments.
    """
    per_entry = {"so": 2, "sharp_minmax": 5}.get(rule, 3)
    slices = compact_slices(model, masks) if compact else {}
    return sum(
        (slices[n].numel if n in slices else p.numel()) * p.element_size() * per_entry
        for n, p in model.named_parameters()
        if n in masks
    )


def _endless(data: TokenBatch, batch_size: int, generator: torch.Generator) -> Iterator[TokenBatch]:
    while True:
        yield from data.batches(batch_size, generator)


def _probe(data: TokenBatch, size: int, seed: int) -> TokenBatch:
    """A fixed seeded subsample: the retain rows whose accuracy the trace follows."""
    if size >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.select(order[:size].sort().values)


def masked_unlearn(
    model: nn.Module,
    forget: TokenBatch,
    retain: TokenBatch,
    weight_masks: dict[str, torch.Tensor],
    settings: UnlearnSettings,
    target_forget_accuracy: float | None,
    device: torch.device,
    *,
    compact: bool = True,
    never_seen: torch.Tensor | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Unlearn ``forget`` from a copy of ``model``; returns it and the per-step trace.

    Each step's loss: core/method/rules.py (the step: stepper.py); ``never_seen``: the NLL per
    answer that ``bounded`` and ``match`` aim at. The trace (from step 0) records forget accuracy
    every ``eval_every`` steps, every step near the target, and a retain probe's every
    ``eval_every`` steps and at the stop (stopping.py). Stops after ``max_steps``, at the target
    (step 0 if already there), or at a non-finite loss, with the last finite weights. ``compact``
    trains whole rows/columns as small deltas (compact.py); ``False`` forces the dense path.
    """
    s = settings
    never_seen = _checked_never_seen(s, never_seen, device)
    needs_reference = s.rule in ("npo", "match") or s.kl_weight > 0
    reference = model.to(device).eval() if needs_reference else None  # never optimised
    model, shared, update, trainable, masks = _trainable_copy(model, weight_masks, device, compact)
    scored = scored_on(forget, s.forget_tokens)
    take_step = _stepper(model, reference, scored, retain, trainable, masks, s, device, never_seen)
    generator = torch.Generator().manual_seed(s.seed)
    forget_batches = _endless(scored, s.batch_size, generator)
    retain_batches = _endless(retain, s.batch_size, generator)
    probe = _probe(retain, s.probe_retain_samples, s.seed)
    levels = Levels(forget, probe, s, device, never_seen)
    trace = [{"step": 0, **levels.forget(model), **levels.retain(model)}]
    done = reached(trace[0], target_forget_accuracy)
    if done:
        nothing_to_unlearn(trace[0], s.stop_metric, target_forget_accuracy)
    progress = tqdm(range(1, s.max_steps + 1), desc="unlearn", leave=False)
    next_check = s.eval_every
    for step in progress:
        if done:
            break
        forget_batch = next(forget_batches).to(device)
        entry = take_step(step, forget_batch, next(retain_batches).to(device))
        if "stopped_non_finite" not in entry and (step >= next_check or step == s.max_steps):
            entry |= levels.forget(model)
            done = reached(entry, target_forget_accuracy)
            if done or step % s.eval_every == 0 or step == s.max_steps:
                entry |= levels.retain(model)
            next_check = step + steps_to_next_check(trace, entry, target_forget_accuracy, s)
        trace.append(entry)
        done = done or "stopped_non_finite" in entry
    progress.close()
    _unshare(shared)  # before the deltas are written: the caller's weights must stay as they are
    update.merge()
    for param in model.parameters():
        param.requires_grad_(True)
    log.info("unlearned for %d steps (%s), %d trainable tensors (%d as compact slices)",
             trace[-1]["step"], s.rule, len(trainable), len(update.deltas))  # fmt: skip
    return model, trace


def _stepper(
    model: nn.Module,
    reference: nn.Module | None,
    forget: TokenBatch,
    retain: TokenBatch,
    trainable: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    s: UnlearnSettings,
    device: torch.device,
    never_seen: torch.Tensor | None,
) -> Stepper | SharpMinMax:
    """The step of ``s.rule`` with its optimiser: ``sharp_minmax``'s two sides on the halves of
    the selection its forget saliency splits it into, any other rule's loss through
    :class:`Stepper`. ``forget``: the rows as the forget term scores them; ``masks``: those
    of the partly selected trainable tensors."""
    if s.rule == "sharp_minmax":
        parts = saliency_split(model, forget, trainable, masks, s.batch_size, device)
        return SharpMinMax(model, trainable, parts, s)
    optimizer, curvature = make_optimizer(model, retain, trainable, masks, s, device)
    return Stepper(model, reference, optimizer, trainable, masks, curvature, s, never_seen)


def _checked_never_seen(
    s: UnlearnSettings, never_seen: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """The never-seen NLLs on ``device`` where the rule aims at them or the stop compares with
    them; an error where they are needed and missing."""
    if s.rule not in NEVER_SEEN_RULES and s.stop_metric not in DISTRIBUTION_METRICS:
        return None
    if never_seen is None or len(never_seen) == 0:
        raise ValueError(
            f"unlearn.rule={s.rule!r} with unlearn.stop_metric={s.stop_metric!r} needs the NLLs "
            "of answers a model never saw, and none were given: pass never_seen "
            "(stopping.never_seen_nll of the "
            "retrain model on the forget split, or of the original on the holdout split), or "
            f"use a rule of {[r for r in RULES if r not in NEVER_SEEN_RULES]} and a stop_metric "
            f"of {[m for m in STOP_METRICS if m not in DISTRIBUTION_METRICS]}"
        )
    return never_seen.to(device)


def _trainable_copy(
    model: nn.Module, weight_masks: dict[str, torch.Tensor], device: torch.device, compact: bool
) -> tuple[
    nn.Module,
    list[tuple[nn.Parameter, torch.Tensor]],
    CompactUpdate,
    dict[str, torch.Tensor],
    dict[str, torch.Tensor],
]:
    """The working copy on ``device`` and what trains in it: compact slices as deltas, dense
    tensors whole; returns also the shared storage to undo, and the masks of partly selected
    dense tensors (gradients multiplied by them)."""
    slices = compact_slices(model, weight_masks) if compact else {}
    # the dense path: whole tensors, gradients masked unless every entry is selected
    dense = {n: m.to(device) for n, m in weight_masks.items() if n not in slices}
    model, shared = _working_copy(model, set(dense))
    model = model.to(device).eval()  # dropout off: steps depend on data alone
    update = CompactUpdate(model, slices)
    trainable: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        param.requires_grad_(name in dense)
        if name in dense:
            trainable[name] = param
    trainable.update(update.parameters())
    masks = {name: mask for name, mask in dense.items() if not mask.all()}
    return model, shared, update, trainable, masks


def _working_copy(
    model: nn.Module, trained_in_place: set[str]
) -> tuple[nn.Module, list[tuple[nn.Parameter, torch.Tensor]]]:
    """A copy of ``model`` to unlearn in, and its parameters that still share ``model``'s storage.

    Only dense-path tensors are written during the steps; the frozen and compact ones are only
    read, so they share storage with ``model`` until :func:`_unshare` clones them at the end:
    the copy of the model then costs no memory while the steps' activations are alive.
    """
    shared = {
        id(p): (nn.Parameter(p.detach(), requires_grad=False), p)
        for name, p in model.named_parameters()
        if name not in trained_in_place
    }
    working = copy.deepcopy(model, memo={key: new for key, (new, _) in shared.items()})
    return working, list(shared.values())


@torch.no_grad()
def _unshare(shared: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Give each working parameter still on its original's storage a storage of its own."""
    for working, original in shared:
        if working.data_ptr() == original.data_ptr():
            working.data = working.data.clone()
