"""Successive unlearning: deletion requests arrive one after another (docs/method.md §6).

Each request is served from the model the previous one left: its forget-side mask gradients
are computed on that model, the module mask is searched again (the retain-side gradients of the
original are reused, with the rows of everyone forgotten so far dropped, docs/method.md §1), and
masked unlearning runs to the same stop criterion. After each request the model is measured on
the request's own people, on everyone forgotten so far, on who is left to retain and on the
holdout, so erosion of earlier forgetting or of utility shows up request by request.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from mape_unlearn.core.architectures import module_parameter_masks, module_sizes
from mape_unlearn.core.encoding import TokenBatch
from mape_unlearn.core.importance import MaskGradients, per_sample_mask_gradients
from mape_unlearn.core.metrics import teacher_forced_stats
from mape_unlearn.core.search import warm_start_greedy
from mape_unlearn.core.unlearning import UnlearnSettings, masked_unlearn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One deletion request and what is measured after it."""

    forget: TokenBatch  # this request's rows
    retain: TokenBatch  # rows still retained after it
    forgotten: TokenBatch  # rows of every request so far, this one included
    retain_rows_kept: torch.Tensor  # [n_r] bool: retain-gradient rows of people still retained


@dataclass(frozen=True)
class SearchSettings:
    """The module search of `mask_search`, repeated for each request."""

    sparsity: float
    objective: str
    lam: float
    max_sweeps: int
    quota: str
    modules: str
    budget_in: str


def successive_unlearning(
    model: nn.Module,
    requests: list[Request],
    holdout: TokenBatch,
    retain_gradients: MaskGradients,
    search: SearchSettings,
    settings: UnlearnSettings,
    target_forget_accuracy: float | None,
    importance_batch_size: int,
    device: torch.device,
) -> list[dict[str, float]]:
    """Serve ``requests`` in order; one row of metrics per request and measured split."""
    rows: list[dict[str, float]] = []
    for number, request in enumerate(requests, start=1):
        forget_gradients = per_sample_mask_gradients(
            model, request.forget, importance_batch_size, device, description=f"request {number}"
        )
        keep = request.retain_rows_kept
        selection, _ = warm_start_greedy(
            forget_gradients.heads,
            forget_gradients.filters,
            retain_gradients.heads[keep],
            retain_gradients.filters[keep],
            **asdict(search),
            module_sizes=module_sizes(model),
        )
        masks = module_parameter_masks(model, selection.heads, selection.filters)
        model, trace = masked_unlearn(
            model, request.forget, request.retain, masks, settings, target_forget_accuracy, device
        )
        measured = {
            "request": request.forget,
            "forgotten so far": request.forgotten,
            "retain": request.retain,
            "holdout": holdout,
        }
        for split, data in measured.items():
            stats = teacher_forced_stats(model, data, settings.batch_size, device)
            rows.append({"request": number, "split": split, "steps": trace[-1]["step"], **stats})
        log.info(
            "request %d: %d steps, %d heads and %d filters re-searched",
            number,
            trace[-1]["step"],
            int(selection.heads.sum()),
            int(selection.filters.sum()),
        )
    return rows


def request_people(
    trained_on: pd.DataFrame,
    first: pd.DataFrame,
    n_requests: int,
    seed: int,
    id_column: str = "person_id",
) -> list[list[str]]:
    """The people of each request: ``first``'s, then as many again drawn from those left.

    Deterministic in ``seed``; fails when fewer than one person would be left to retain.
    """
    if n_requests < 1:
        raise ValueError(f"successive.requests={n_requests!r} is not allowed: expected >= 1")
    size = first[id_column].nunique()
    people = sorted(trained_on[id_column].unique().tolist())
    needed = size * n_requests
    if needed >= len(people):
        raise ValueError(
            f"successive.requests={n_requests!r} requests of {size} people need {needed} of the "
            f"{len(people)} trained-on people, leaving none to retain: expected at most "
            f"{(len(people) - 1) // size} requests"
        )
    chosen = sorted(first[id_column].unique().tolist())
    left = [person for person in people if person not in set(chosen)]
    requests = [chosen]
    rng = random.Random(seed)
    for _ in range(n_requests - 1):
        drawn = sorted(rng.sample(left, size))
        left = [person for person in left if person not in set(drawn)]
        requests.append(drawn)
    return requests
