"""The loss of each unlearning rule (docs/method.md §4): a forget term, and the retain terms
that keep utility.

Data-parallel under a ``torch.distributed`` process group: every rank holds the whole batch and
computes the loss of its own rows, normalised by the whole batch's counts, so the ranks' losses
add up to the one-process loss (core/method/unlearning.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mape_unlearn.core.data.encoding import IGNORE, TokenBatch
from mape_unlearn.core.method.losses import answer_nll, answer_token_logits
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.distributed import all_reduce_sum, local_rows


def forget_term(
    rule: str,
    model: nn.Module,
    reference: nn.Module | None,
    batch: TokenBatch,
    beta: float,
    never_seen: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forget part of the loss to minimise, and the batch's mean answer NLL (for the trace).

    ``ga``/``gd``/``so``: minus the mean answer NLL (gradient ascent). ``npo``: negative
    preference optimisation (Zhang et al. 2024),
    ``-(2/beta) * mean log sigmoid(-beta * log(pi/pi_ref))`` with sequence log-probabilities
    over answer tokens and the original model as reference:
    bounded, so it slows down instead of diverging once the forget set is unlikely.
    ``bounded``/``match``: each answer aimed at its never-seen level (:func:`bounded_term`,
    :func:`match_term`).

    ``batch`` is the whole batch, the same on every rank; under a process group both values are
    this rank's share, which add up over the ranks to the whole batch's (module docstring).
    """
    if rule == "match":
        assert reference is not None and never_seen is not None, "match needs both references"
        return match_term(model, reference, batch, never_seen)
    nll, counts, mean_nll = _nll_share(model, batch)
    if rule == "bounded":
        assert never_seen is not None, "bounded needs the never-seen NLL of the answers"
        return bounded_term(nll / counts.clamp(min=1), len(batch), never_seen), mean_nll
    if rule != "npo":
        return -mean_nll, mean_nll
    assert reference is not None, "npo needs the original model as reference"
    with torch.no_grad():
        reference_nll, _, _ = _nll_share(reference, batch)
    log_ratio = reference_nll - nll  # log pi(y|x) - log pi_ref(y|x)
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).sum() / len(batch), mean_nll


def bounded_term(
    per_token_nll: torch.Tensor, batch_size: int, never_seen: torch.Tensor
) -> torch.Tensor:
    """Ascent on each answer only while it is likelier than its never-seen target, none beyond:
    ``relu(target - nll)``, this rank's share of the batch mean.

    ``per_token_nll``: this rank's answers' NLL per scored token, ``[n_r]``; ``never_seen``: the
    same NLL of answers a model never saw (the retrain model on the forget people, or the
    original on the holdout people), ``[m]``. The batch's answers, ranked by their current NLL,
    get the never-seen quantiles of their ranks as targets (:func:`_quantile_targets`), so the
    forget set is steered toward the never-seen *distribution*, wide as it is, not toward one
    level for all (docs/method.md §4).
    """
    targets = _quantile_targets(per_token_nll.detach(), batch_size, never_seen)
    return F.relu(targets - per_token_nll).sum() / batch_size


def match_term(
    model: nn.Module, reference: nn.Module, batch: TokenBatch, never_seen: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each scored token's prediction against a never-seen version of the
    original's: the true token at its answer's never-seen quantile (as :func:`bounded_term`
    aims it), the rest of the mass over the other tokens in the original's proportions.

    Lowering the true token alone leaves its mass wherever the step puts it; a model that never
    saw a person spreads it over the plausible alternatives (the other values of the attribute),
    which is what the truth ratio and forget quality compare (docs/method.md §4, §6). Bounded:
    at the target the loss is minimal, so answers past it are pulled back. Returns this rank's
    share of the loss and of the batch's mean NLL (for the trace), like :func:`forget_term`.
    """
    own = _own_rows(batch)
    if len(own) == 0:
        zero = torch.zeros((), device=batch.input_ids.device)
        return zero, zero
    logits, targets = answer_token_logits(model, own)
    with torch.no_grad():
        reference_logits, _ = answer_token_logits(reference, own)
    keep = targets != IGNORE
    log_p = torch.log_softmax(logits.float(), dim=-1)
    true = targets.clamp(min=0).unsqueeze(-1)
    nll = -(log_p.gather(-1, true).squeeze(-1) * keep).sum(dim=1)  # [n_r]
    aims = _quantile_targets((nll / keep.sum(dim=1).clamp(min=1)).detach(), len(batch), never_seen)
    soft = _never_seen_prediction(reference_logits.float(), true, aims)
    cross_entropy = -(soft * log_p).sum(dim=-1)  # [n_r, S]
    total = _answer_tokens(batch)
    return (cross_entropy * keep).sum() / total, nll.sum() / total


def _never_seen_prediction(
    reference_logits: torch.Tensor, true: torch.Tensor, aims: torch.Tensor
) -> torch.Tensor:
    """``[n, S, V]``: probability ``exp(-aim)`` on the true token (``true``: ``[n, S, 1]``),
    ``1 - exp(-aim)`` over the others as the reference spreads it among them."""
    others = torch.softmax(reference_logits.scatter(-1, true, -torch.inf), dim=-1)
    on_true = torch.exp(-aims).view(-1, 1, 1).expand_as(true)
    return (others * (1 - on_true)).scatter(-1, true, on_true)


def _quantile_targets(own: torch.Tensor, batch_size: int, never_seen: torch.Tensor) -> torch.Tensor:
    """The never-seen quantile at each of this rank's answers' rank in the whole batch."""
    whole = torch.zeros(batch_size, dtype=own.dtype, device=own.device)
    rows = local_rows(batch_size)
    whole[rows] = own
    whole = all_reduce_sum([whole])[0]  # every rank: the whole batch's NLLs
    ranks = whole.argsort(stable=True).argsort(stable=True)
    levels = (ranks.to(never_seen.dtype) + 0.5) / batch_size
    return torch.quantile(never_seen.to(own.device), levels.to(own.device))[rows]


def loss_backward(
    model: nn.Module,
    reference: nn.Module | None,
    forget_batch: TokenBatch,
    retain_batch: TokenBatch,
    s: UnlearnSettings,
    never_seen: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """One step's gradients; returns this rank's (forget part, retain part, forget NLL,
    retain NLL) of the loss, detached.

    Loss per step (forget batch f, retain batch r, original model as reference):
    ``ga``: ``-L(f)``; ``gd``: ``-L(f) + alpha L(r)``; ``npo``: ``NPO(f) + alpha L(r)``;
    ``bounded``/``match``: the distance of f's answers to their never-seen levels (``never_seen``)
    ``+ alpha L(r)`` (:func:`forget_term`); ``so``: ``-L(f)``, whose gradient the stepper turns
    into a damped Newton step (``sharp_minmax`` steps each side on its own:
    :func:`weighted_nll_backward`). ``kl_weight`` adds ``KL(original || model)`` on r to any rule;
    ``forget_tokens: fact`` has scored f on its fact tokens only.

    One backward per batch (their gradients add up): a single batch's activations are alive
    at a time, and the retain pass keeps no graph when its loss has no weight. The forwards run
    under ``unlearn.autocast`` (core.runtime.precision), a context per pass, so no bf16 copy of
    the weights outlives the step that changes them.
    """
    device = forget_batch.input_ids.device
    with precision.autocast(device, s.autocast, model):  # this step's forwards only
        forget_part, forget_loss = forget_term(
            s.rule, model, reference, forget_batch, s.beta, never_seen
        )
    if forget_part.requires_grad:  # not on a rank with no rows of this batch
        forget_part.backward()
    weight = 0.0 if s.rule in ("ga", "so") else s.alpha
    anchored = reference is not None and s.kl_weight > 0
    grad = torch.set_grad_enabled(weight > 0 or anchored)
    with grad, precision.autocast(device, s.autocast, model):
        _, _, retain_loss = _nll_share(model, retain_batch)
        retain_part = weight * retain_loss
        if anchored:
            retain_part = retain_part + s.kl_weight * retain_kl(model, reference, retain_batch)
    if retain_part.requires_grad:
        retain_part.backward()
    return [t.detach() for t in (forget_part, retain_part, forget_loss, retain_loss)]


def weighted_nll_backward(model: nn.Module, batch: TokenBatch, weight: float) -> list[torch.Tensor]:
    """The gradients of ``weight`` times the batch's mean answer NLL; returns this rank's shares
    of that loss and of the NLL, detached. ``sharp_minmax``'s two sides, each with its own
    optimiser: ``alpha L(r)`` and ``-(1 - alpha) L(f)`` (core/method/sharp_minmax.py)."""
    _, _, nll = _nll_share(model, batch)
    loss = weight * nll
    if loss.requires_grad:  # not on a rank with no rows of this batch
        loss.backward()
    return [loss.detach(), nll.detach()]


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


def _nll_share(
    model: nn.Module, batch: TokenBatch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample answer NLL of this rank's rows of ``batch`` and their scored-token counts,
    ``[n_r]`` each, and their share of the batch's mean answer NLL (the training loss); the
    model never sees an empty shard."""
    own = _own_rows(batch)
    if len(own) == 0:
        nll = torch.zeros(0, device=batch.input_ids.device)
        counts = torch.zeros(0, dtype=torch.long, device=batch.input_ids.device)
    else:
        nll, counts = answer_nll(model, own)
    return nll, counts, nll.sum() / _answer_tokens(batch)
