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
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from mape_unlearn.core.data.encoding import TokenBatch
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.importance import MaskGradients, per_sample_mask_gradients
from mape_unlearn.core.method.methods import DeletionRequest, select_and_unlearn
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.device import resolve_device

log = logging.getLogger(__name__)

MODULE_MASK = Selector(kind="modules")  # the search of ``mask_search``, as it is configured


@dataclass(frozen=True)
class Request:
    """One deletion request and what is measured after it."""

    forget: TokenBatch  # this request's rows
    retain: TokenBatch  # rows still retained after it
    forgotten: TokenBatch  # rows of every request so far, this one included
    retain_rows_kept: torch.Tensor  # [n_r] bool: retain-gradient rows of people still retained


def successive_unlearning(
    model: nn.Module,
    requests: list[Request],
    holdout: TokenBatch,
    retain_gradients: MaskGradients,
    settings: tuple[SearchSettings, UnlearnSettings],
    target: tuple[float | None, torch.Tensor | None],
    importance_batch_size: int,
) -> list[dict[str, float]]:
    """Serve ``requests`` in order; one row of metrics per request and measured split.

    ``target``: the forget level every request stops at and the never-seen NLLs the never-seen
    rules aim at (one distribution of never-seen answers serves every request)."""
    search, unlearn = settings
    device = resolve_device(unlearn.device)
    rows: list[dict[str, float]] = []
    for number, request in enumerate(requests, start=1):
        forget_gradients = per_sample_mask_gradients(
            model, request.forget, importance_batch_size, device, description=f"request {number}"
        )
        keep = request.retain_rows_kept
        served = DeletionRequest(
            request.forget,
            request.retain,
            *target,
            forget_gradients,
            MaskGradients(retain_gradients.heads[keep], retain_gradients.filters[keep]),
        )
        model, trace, cost = select_and_unlearn(model, MODULE_MASK, served, search, unlearn)
        measured = {
            "request": request.forget,
            "forgotten so far": request.forgotten,
            "retain": request.retain,
            "holdout": holdout,
        }
        for split, data in measured.items():
            stats = teacher_forced_stats(model, data, unlearn.batch_size, device)
            rows.append({"request": number, "split": split, "steps": cost["steps"], **stats})
        log.info(
            "request %d: %d steps, %d of %d weights re-searched",
            number,
            cost["steps"],
            cost["trainable_parameters"],
            sum(p.numel() for p in model.parameters()),
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
