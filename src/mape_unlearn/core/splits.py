"""Person-level forget / retain / holdout split of a QA table.

Unlearning is evaluated per person: the forget set is what the model must unlearn, the retain
set is what it must keep knowing, and the holdout set are people it never saw (the reference
for "as if never trained on"). Splitting by person rather than by row guarantees that no
person's facts leak from one split into another.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import pandas as pd

__all__ = ["Splits", "split_by_person"]

_MAX_LISTED = 10


@dataclass(frozen=True)
class Splits:
    """Rows of the QA table for the forget, retain and holdout people."""

    forget: pd.DataFrame
    retain: pd.DataFrame
    holdout: pd.DataFrame


def _check_fraction(name: str, value: object, *, allow_zero: bool) -> float:
    allowed = "[0, 1)" if allow_zero else "(0, 1)"
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (0 <= value < 1) if allow_zero else (0 < value < 1)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected a number in {allowed}")
    return float(value)


def _check_forget_ids(forget_ids: object, people: Sequence[object], id_column: str) -> list:
    if isinstance(forget_ids, (str, bytes)) or not isinstance(forget_ids, Sequence):
        raise ValueError(f"forget_ids={forget_ids!r} is not allowed: expected a list of ids")
    if len(forget_ids) == 0:
        raise ValueError("forget_ids=[] is not allowed: expected a non-empty list of ids or None")
    unique_ids = list(dict.fromkeys(forget_ids))  # drop duplicates, keep order
    known = set(people)
    unknown = [i for i in unique_ids if i not in known]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:_MAX_LISTED])
        more = f" (and {len(unknown) - _MAX_LISTED} more)" if len(unknown) > _MAX_LISTED else ""
        raise ValueError(
            f"forget_ids contains {len(unknown)} id(s) not present in column {id_column!r}: "
            f"{shown}{more}; expected ids that occur in the data"
        )
    return unique_ids


def split_by_person(
    qa: pd.DataFrame,
    forget_fraction: float,
    holdout_fraction: float,
    seed: int,
    forget_ids: list[str] | None = None,
    id_column: str = "person_id",
) -> Splits:
    """Split ``qa`` into forget / retain / holdout by person, deterministic in ``seed``.

    ``n_forget = max(1, round(forget_fraction * n_people))`` people are drawn at random unless
    ``forget_ids`` is given, which then overrides (and ignores) ``forget_fraction``. Holdout
    takes ``round(holdout_fraction * n_people)`` people (at least 1 when the fraction is > 0)
    at random from the rest; everyone else is retain, which must be non-empty. Row order
    within each split follows ``qa``; indexes are reset. Python's ``round`` is used (ties go
    to the even number).
    """
    if id_column not in qa.columns:
        raise ValueError(
            f"id_column={id_column!r} is not allowed: it is not a column of qa; "
            f"expected one of {list(qa.columns)}"
        )
    ids = qa[id_column]
    if ids.isna().any():
        raise ValueError(
            f"id_column={id_column!r} has {int(ids.isna().sum())} missing value(s): "
            "expected every row to have an id"
        )
    holdout_fraction = _check_fraction("holdout_fraction", holdout_fraction, allow_zero=True)
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed={seed!r} is not allowed: expected an integer")
    seed = int(seed)  # also accept numpy integers

    people = sorted(ids.unique().tolist())
    n_people = len(people)
    n_holdout = round(holdout_fraction * n_people)
    if holdout_fraction > 0:
        n_holdout = max(1, n_holdout)
    rng = random.Random(seed)

    if forget_ids is None:
        forget_fraction = _check_fraction("forget_fraction", forget_fraction, allow_zero=False)
        n_forget = max(1, round(forget_fraction * n_people))
        _check_retain(n_people, n_forget, n_holdout, forget_fraction, holdout_fraction)
        order = people.copy()
        rng.shuffle(order)
        forget_set = set(order[:n_forget])
        holdout_set = set(order[n_forget : n_forget + n_holdout])
    else:
        chosen = _check_forget_ids(forget_ids, people, id_column)
        _check_retain(n_people, len(chosen), n_holdout, None, holdout_fraction)
        forget_set = set(chosen)
        rest = [p for p in people if p not in forget_set]
        rng.shuffle(rest)
        holdout_set = set(rest[:n_holdout])

    in_forget = ids.isin(forget_set)
    in_holdout = ids.isin(holdout_set)
    return Splits(
        forget=qa[in_forget].reset_index(drop=True),
        retain=qa[~in_forget & ~in_holdout].reset_index(drop=True),
        holdout=qa[in_holdout].reset_index(drop=True),
    )


def _check_retain(
    n_people: int,
    n_forget: int,
    n_holdout: int,
    forget_fraction: float | None,
    holdout_fraction: float,
) -> None:
    if n_people - n_forget - n_holdout >= 1:
        return
    forget_part = (
        f"forget_ids ({n_forget} people)"
        if forget_fraction is None
        else f"forget_fraction={forget_fraction} ({n_forget} people)"
    )
    raise ValueError(
        f"{forget_part} and holdout_fraction={holdout_fraction} ({n_holdout} people) leave no "
        f"retain people out of {n_people}: expected them to leave at least 1 person for retain"
    )
