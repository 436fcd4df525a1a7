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
import math
from collections.abc import Iterator
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn
from tqdm.auto import tqdm

from mape_unlearn.core.data.encoding import IGNORE, TokenBatch, TokenView, scored_on
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.compact import CompactUpdate, compact_slices
from mape_unlearn.core.method.losses import answer_nll, answer_token_logits, mean_answer_nll
from mape_unlearn.core.runtime.device import resolve_device
from mape_unlearn.core.runtime.distributed import (
    all_reduce_sum,
    local_rows,
    rank_and_world,
    shard_bounds,
)
from mape_unlearn.core.runtime.settings import settings

log = logging.getLogger(__name__)

Rule = Literal["ga", "gd", "npo", "so"]
RULES: tuple[str, ...] = get_args(Rule)
# what "forget accuracy" means along a run and for the stop: see metrics.teacher_forced_stats
StopMetric = Literal["answer_token_accuracy", "exact_match", "fact_accuracy", "fact_exact_match"]
STOP_METRICS: tuple[str, ...] = get_args(StopMetric)


@settings
class UnlearnSettings:
    """How to unlearn (parameters_unlearn.yml): the base rule, its weights, the step budget,
    the trace and where to stop."""

    rule: Rule
    lr: PositiveFloat  # Adam's step size; for `so`, the Newton step size (1 = a full damped step)
    max_steps: PositiveInt
    alpha: NonNegativeFloat  # weight of the retain NLL (gd, npo)
    beta: PositiveFloat  # npo: inverse temperature
    damping: PositiveFloat  # so: added to the diagonal retain Fisher, relative to its mean
    kl_weight: NonNegativeFloat  # weight of KL(original || model) on retain batches; 0 = off
    batch_size: PositiveInt
    eval_every: PositiveInt  # steps between trace checkpoints (forget and retain accuracy)
    probe_retain_samples: PositiveInt  # retain rows whose accuracy the trace records
    stop_metric: StopMetric  # the trace's forget and retain "accuracy"
    forget_tokens: TokenView  # what the forget term scores (docs/method.md §4)
    seed: int
    stop_at_retrain_level: bool = True  # stop once forget accuracy reaches the target level
    target: Literal["retrain", "holdout"] = "retrain"  # whose level that is
    device: str = "auto"  # core.runtime.device.resolve_device


def forget_term(
    rule: str, model: nn.Module, reference: nn.Module | None, batch: TokenBatch, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forget part of the loss to minimise, and the batch's mean answer NLL (for the trace).

    ``ga``/``gd``/``so``: minus the mean answer NLL (gradient ascent). ``npo``: negative
    preference optimisation (Zhang et al. 2024),
    ``-(2/beta) * mean log sigmoid(-beta * log(pi/pi_ref))`` with sequence log-probabilities
    over answer tokens and the original model as reference:
    bounded, so it slows down instead of diverging once the forget set is unlikely.

    ``batch`` is the whole batch, the same on every rank; under a process group both values are
    this rank's share, which add up over the ranks to the whole batch's (module docstring).
    """
    nll, mean_nll = _nll_share(model, batch)
    if rule != "npo":
        return -mean_nll, mean_nll
    assert reference is not None, "npo needs the original model as reference"
    with torch.no_grad():
        reference_nll, _ = _nll_share(reference, batch)
    log_ratio = reference_nll - nll  # log pi(y|x) - log pi_ref(y|x)
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).sum() / len(batch), mean_nll


def retain_kl(model: nn.Module, reference: nn.Module, batch: TokenBatch) -> torch.Tensor:
    """``KL(reference || model)`` of the next-token distributions, mean over answer tokens.

    Like :func:`forget_term`: this rank's share of the whole ``batch``'s value.
    """
    own = _own_rows(batch)
    if len(own) == 0:
        return torch.zeros((), device=batch.input_ids.device)
    logits, targets = answer_token_logits(model, own)
    with torch.no_grad():
        reference_logits, _ = answer_token_logits(reference, own)
    keep = targets != IGNORE
    log_p = torch.log_softmax(reference_logits[keep].float(), dim=-1)
    log_q = torch.log_softmax(logits[keep].float(), dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="sum") / _answer_tokens(batch)


def _own_rows(batch: TokenBatch) -> TokenBatch:
    """This rank's rows of a batch every rank holds whole; none when it has fewer rows than
    there are ranks (such a rank still joins every collective, adding zeros)."""
    return batch.select(local_rows(len(batch)))


def _answer_tokens(batch: TokenBatch) -> torch.Tensor:
    """The whole batch's answer-token count: what every rank divides its sums by."""
    return (batch.targets() != IGNORE).sum().clamp(min=1)


def _nll_share(model: nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample answer NLL of this rank's rows of ``batch``, ``[n_r]``, and their share of the
    batch's mean answer NLL (the training loss); the model never sees an empty shard."""
    own = _own_rows(batch)
    if len(own) == 0:
        nll = torch.zeros(0, device=batch.input_ids.device)
    else:
        nll, _ = answer_nll(model, own)
    return nll, nll.sum() / _answer_tokens(batch)


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


def optimizer_state_bytes(
    model: nn.Module, masks: dict[str, torch.Tensor], rule: str, *, compact: bool = True
) -> int:
    """Bytes of gradients and optimiser state held for the trainable tensors.

    Adam keeps a gradient and two moments per trainable entry: every entry of a dense-path
    tensor with a selected entry, only the selected slice of a compact one (as
    :func:`masked_unlearn` with the same ``compact`` trains them); ``so`` keeps a gradient and
    the Fisher.
    """
    per_entry = 3 if rule != "so" else 2
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
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Unlearn ``forget`` from a copy of ``model``; returns it and the per-step trace.

    The loss of each step and rule: :func:`_backward` (``so``'s Newton step:
    :func:`_newton_direction`). The trace starts at step 0 (the model as given); it records
    forget accuracy every ``eval_every`` steps and every step once the target is near, and the
    accuracy of a fixed retain subsample every ``eval_every`` steps and at the stop (the
    forget/utility trajectory), both by ``stop_metric``. Stops after ``max_steps``, when forget
    accuracy reaches ``target_forget_accuracy`` (at step 0 when it is there already: nothing to
    unlearn), or at the first non-finite loss, restoring the weights of the last finite step.
    ``compact`` trains masks of whole rows/columns as small deltas (core/method/compact.py: the
    same result to float rounding in a fraction of the memory); ``False`` forces the dense path.
    """
    s = settings
    needs_reference = s.rule == "npo" or s.kl_weight > 0
    reference = model.to(device).eval() if needs_reference else None  # never optimised
    model, shared, update, trainable, masks = _trainable_copy(model, weight_masks, device, compact)
    optimizer, curvature = _optimizer(model, retain, trainable, masks, s, device)
    take_step = _Stepper(model, reference, optimizer, trainable, masks, curvature, s)
    generator = torch.Generator().manual_seed(s.seed)
    forget_batches = _endless(scored_on(forget, s.forget_tokens), s.batch_size, generator)
    retain_batches = _endless(retain, s.batch_size, generator)
    levels = _Levels(forget, _probe(retain, s.probe_retain_samples, s.seed), s, device)
    trace = [{"step": 0, **levels.forget(model), **levels.retain(model)}]
    done = _reached(trace[0], target_forget_accuracy)
    if done:
        _nothing_to_unlearn(trace[0], s.stop_metric, target_forget_accuracy)
    progress = tqdm(range(1, s.max_steps + 1), desc="unlearn", leave=False)
    next_check = s.eval_every
    for step in progress:
        if done:
            break
        forget_batch = next(forget_batches).to(device)
        entry = take_step(step, forget_batch, next(retain_batches).to(device))
        if "stopped_non_finite" not in entry and (step >= next_check or step == s.max_steps):
            entry |= levels.forget(model)
            done = _reached(entry, target_forget_accuracy)
            if done or step % s.eval_every == 0 or step == s.max_steps:
                entry |= levels.retain(model)
            next_check = step + _steps_to_next_check(trace, entry, target_forget_accuracy, s)
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


def _optimizer(
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


def _backward(
    model: nn.Module,
    reference: nn.Module | None,
    forget_batch: TokenBatch,
    retain_batch: TokenBatch,
    s: UnlearnSettings,
) -> list[torch.Tensor]:
    """One step's gradients; returns this rank's (forget part, retain part, forget NLL,
    retain NLL) of the loss, detached.

    Loss per step (forget batch f, retain batch r, original model as reference):
    ``ga``: ``-L(f)``; ``gd``: ``-L(f) + alpha L(r)``; ``npo``: ``NPO(f) + alpha L(r)``
    (:func:`forget_term`); ``so``: ``-L(f)``, whose gradient :func:`_newton_direction` turns
    into a damped Newton step. ``kl_weight`` adds ``KL(original || model)`` on r to any rule;
    ``forget_tokens: fact`` has scored f on its fact tokens only.

    One backward per batch (their gradients add up): a single batch's activations are alive
    at a time, and the retain pass keeps no graph when its loss has no weight.
    """
    forget_part, forget_loss = forget_term(s.rule, model, reference, forget_batch, s.beta)
    if forget_part.requires_grad:  # not on a rank with no rows of this batch
        forget_part.backward()
    weight = 0.0 if s.rule in ("ga", "so") else s.alpha
    anchored = reference is not None and s.kl_weight > 0
    with torch.set_grad_enabled(weight > 0 or anchored):
        _, retain_loss = _nll_share(model, retain_batch)
        retain_part = weight * retain_loss
        if anchored:
            retain_part = retain_part + s.kl_weight * retain_kl(model, reference, retain_batch)
    if retain_part.requires_grad:
        retain_part.backward()
    return [t.detach() for t in (forget_part, retain_part, forget_loss, retain_loss)]


class _Stepper:
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
    ) -> None:
        self.model, self.reference, self.optimizer = model, reference, optimizer
        self.trainable, self.masks, self.curvature = trainable, masks, curvature
        self.settings = settings
        self.last_finite: dict[str, torch.Tensor] = {}

    def __call__(self, step: int, forget: TokenBatch, retain: TokenBatch) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        losses = _backward(self.model, self.reference, forget, retain, self.settings)
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


def _nothing_to_unlearn(start: dict[str, float], metric: str, target: float | None) -> None:
    log.warning(
        "nothing to unlearn: the model's forget %s is %.3f, already at or below the "
        "target %.3f (the forget set follows from the rest of the data, or was never "
        "learnt); the model is returned unchanged",
        metric,
        start["forget_accuracy"],
        target,
    )


class _Levels:
    """The trace's checkpoint: forget accuracy and the accuracy of a fixed retain subsample,
    both by the settings' ``stop_metric`` (the forget/utility trajectory). The stop needs only
    the forget level, so the per-step checks near the target skip the retain probe, which is
    measured every ``eval_every`` steps and where the run stops."""

    def __init__(
        self, forget: TokenBatch, probe: TokenBatch, s: UnlearnSettings, device: torch.device
    ) -> None:
        self.data, self.settings, self.device = {"forget": forget, "retain": probe}, s, device

    def forget(self, model: nn.Module) -> dict[str, float]:
        return self._measure(model, "forget")

    def retain(self, model: nn.Module) -> dict[str, float]:
        return self._measure(model, "retain")

    def _measure(self, model: nn.Module, split: str) -> dict[str, float]:
        level = _level(model, self.data[split], self.settings, self.device)
        return {f"{split}_accuracy": level}


def _reached(entry: dict[str, float], target: float | None) -> bool:
    return target is not None and "forget_accuracy" in entry and entry["forget_accuracy"] <= target


def _steps_to_next_check(
    trace: list[dict[str, float]], entry: dict[str, float], target: float | None, s: UnlearnSettings
) -> int:
    """1 once the target is near, else ``eval_every``: matched forgetting must not pass far
    below the target between two checkpoints. Near means the drop of the last interval, twice
    over, would reach the target; once near, every step is checked to the end."""
    checks = [e for e in trace if "forget_accuracy" in e]
    if target is None or not checks:
        return s.eval_every
    last = checks[-1]
    if entry["step"] - last["step"] == 1 and len(checks) > 1:
        return 1  # already checking every step
    drop = last["forget_accuracy"] - entry["forget_accuracy"]
    return 1 if entry["forget_accuracy"] - 2 * max(drop, 0.0) <= target else s.eval_every


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


def stop_level(model: nn.Module, data: TokenBatch, settings: UnlearnSettings) -> float:
    """The forget level a run stops at (``unlearn.target``): ``model``'s ``stop_metric`` on
    ``data``, the retrain model's on the forget people or the original's on the holdout people."""
    return _level(model, data, settings, resolve_device(settings.device))


def _level(
    model: nn.Module, data: TokenBatch, settings: UnlearnSettings, device: torch.device
) -> float:
    """``model``'s ``stop_metric`` on ``data``: the stop level and every trace checkpoint."""
    return teacher_forced_stats(model, data, settings.batch_size, device)[settings.stop_metric]


def matched_forgetting(
    trace: list[dict[str, float]], target_forget_accuracy: float | None
) -> dict[str, float]:
    """Where the trajectory first reaches the target: step, and forget and retain accuracy
    there (docs/method.md §6), and the forget accuracy at the last checkpoint (where the run
    stopped).

    NaN when the target is unknown or never reached.
    """
    checks = [entry for entry in trace if "forget_accuracy" in entry]
    stop = checks[-1]["forget_accuracy"] if checks else math.nan
    for entry in checks:
        if _reached(entry, target_forget_accuracy):
            return {
                "step": entry["step"],
                "forget_accuracy": entry["forget_accuracy"],
                "retain_accuracy": entry["retain_accuracy"],
                "forget_accuracy_at_stop": stop,
            }
    nan = math.nan
    return {
        "step": nan,
        "forget_accuracy": nan,
        "retain_accuracy": nan,
        "forget_accuracy_at_stop": stop,
    }
