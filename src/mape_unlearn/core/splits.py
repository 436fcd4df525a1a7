"""Person-level splits of a QA table, in two independent steps.

Unlearning is evaluated per person: the holdout people are never trained on (the reference for
"as if never trained on"), the forget people are what the trained model must unlearn and the
retain people what it must keep knowing. Splitting by person rather than by row guarantees that
no person's facts leak from one split into another.

The two steps are independent on purpose: :func:`hold_out_people` decides what the original
model is trained on and knows nothing about the deletion request, and
:func:`choose_forget_people` picks the people to forget from the trained-on rows only. A new
deletion request (other ids, fraction or seed) therefore leaves the trained-on data, and so
everything computed from it, unchanged.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from numbers import Integral, Real

import pandas as pd

__all__ = ["check_retain_size", "choose_forget_people", "hold_out_people"]

_MAX_LISTED = 10


def hold_out_people(
    qa: pd.DataFrame, fraction: float, seed: int, id_column: str = "person_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``qa`` by person into ``(trained_on, holdout)``, deterministic in ``seed``.

    ``round(fraction * n_people)`` people (at least 1 when ``fraction > 0``; Python's ``round``,
    ties to even) are drawn at random for the holdout; at least 2 people must be left to train
    on (one to forget later, one to retain). Row order within each output follows ``qa``;
    indexes are reset.
    """
    ids = _person_ids(qa, id_column)
    fraction = _check_fraction("holdout.fraction", fraction, allow_zero=True)
    rng = random.Random(_check_seed("holdout.seed", seed))

    people = sorted(ids.unique().tolist())
    n_people = len(people)
    n_holdout = round(fraction * n_people)
    if fraction > 0:
        n_holdout = max(1, n_holdout)
    if n_people - n_holdout < 2:
        raise ValueError(
            f"holdout.fraction={fraction!r} ({n_holdout} people) leaves {n_people - n_holdout} "
            f"trained-on people out of {n_people}: expected at least 2 (one to forget, one to "
            "retain)"
        )
    rng.shuffle(people)
    in_holdout = ids.isin(set(people[:n_holdout]))
    return _rows(qa, ~in_holdout), _rows(qa, in_holdout)


def choose_forget_people(
    trained_on: pd.DataFrame,
    fraction: float,
    seed: int,
    ids: list[str] | None = None,
    id_column: str = "person_id",
    ids_from: str = "forget.ids",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the trained-on rows by person into ``(forget, retain)``, deterministic in ``seed``.

    ``ids`` lists the people to forget and overrides (and ignores) ``fraction``; otherwise
    ``max(1, round(fraction * n_people))`` people are drawn at random. At least 1 person must
    be left to retain. Row order within each output follows ``trained_on``; indexes are reset.
    ``ids_from`` names where the ids came from, for error messages.
    """
    person_ids = _person_ids(trained_on, id_column)
    people = sorted(person_ids.unique().tolist())
    n_people = len(people)
    if ids is None:
        fraction = _check_fraction("forget.fraction", fraction, allow_zero=False)
        rng = random.Random(_check_seed("forget.seed", seed))
        n_forget = max(1, round(fraction * n_people))
        what = f"forget.fraction={fraction!r} ({n_forget} people)"
        rng.shuffle(people)
        chosen = people[:n_forget]
    else:
        chosen = _check_forget_ids(ids, people, id_column, ids_from)
        n_forget = len(chosen)
        what = f"{ids_from} ({n_forget} people)"
    if n_people - n_forget < 1:
        raise ValueError(
            f"{what} leaves no retain people out of {n_people} trained-on people: expected at "
            "least 1 person left to retain"
        )
    in_forget = person_ids.isin(set(chosen))
    return _rows(trained_on, in_forget), _rows(trained_on, ~in_forget)


def check_retain_size(retain: pd.DataFrame, min_rows: int) -> None:
    """Stop before any heavy work when the retain set is too small for the retain-side Fisher.

    The retain-side importance (METHOD.md §1) is a mean of squared mask gradients over retain
    rows; for Gaussian gradients its relative standard error is ``sqrt(2 / n)``, 25 % at 32.
    """
    if len(retain) < min_rows:
        raise ValueError(
            f"the retain set has {len(retain)} row(s), fewer than "
            f"data_prep.forget.min_retain_rows={min_rows} needed for the retain-side Fisher "
            "estimate: forget fewer people, hold out fewer (data_prep.holdout.fraction), bring "
            "more data, or lower the minimum"
        )


def _rows(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    return frame[mask].reset_index(drop=True)


def _person_ids(frame: pd.DataFrame, id_column: str) -> pd.Series:
    if id_column not in frame.columns:
        raise ValueError(
            f"id_column={id_column!r} is not allowed: it is not a column of the data; "
            f"expected one of {list(frame.columns)}"
        )
    ids = frame[id_column]
    if ids.isna().any():
        raise ValueError(
            f"id_column={id_column!r} has {int(ids.isna().sum())} missing value(s): "
            "expected every row to have an id"
        )
    return ids


def _check_fraction(name: str, value: object, *, allow_zero: bool) -> float:
    allowed = "[0, 1)" if allow_zero else "(0, 1)"
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (0 <= value < 1) if allow_zero else (0 < value < 1)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected a number in {allowed}")
    return float(value)


def _check_seed(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name}={value!r} is not allowed: expected an integer")
    return int(value)  # also accept numpy integers


def _check_forget_ids(ids: object, people: Sequence[object], id_column: str, ids_from: str) -> list:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ValueError(f"{ids_from}={ids!r} is not allowed: expected a list of ids or None")
    if len(ids) == 0:
        raise ValueError(f"{ids_from}=[] is not allowed: expected a non-empty list of ids or None")
    unique_ids = list(dict.fromkeys(ids))  # drop duplicates, keep order
    known = set(people)
    unknown = [i for i in unique_ids if i not in known]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:_MAX_LISTED])
        more = f" (and {len(unknown) - _MAX_LISTED} more)" if len(unknown) > _MAX_LISTED else ""
        raise ValueError(
            f"{ids_from} contains {len(unknown)} id(s) not in the trained-on data (column "
            f"{id_column!r}): {shown}{more}; expected ids of people the model was trained on "
            "(a holdout person was never trained on, so it cannot be forgotten)"
        )
    return unique_ids


def rows_not_forgotten(
    trained_on: pd.DataFrame,
    rows: Sequence[int],
    forget: pd.DataFrame,
    id_column: str = "person_id",
) -> list[bool]:
    """For each of ``rows`` of ``trained_on``: True unless its person is being forgotten.

    The retain-side mask gradients are computed once on everything the model was trained on;
    each deletion request drops its own people's rows from them with this.
    """
    people = trained_on[id_column].to_numpy()[list(rows)]
    forgotten = set(forget[id_column])
    return [person not in forgotten for person in people]


def check_disjoint(
    forget: pd.DataFrame, retain: pd.DataFrame, id_column: str = "person_id"
) -> None:
    """Refuse splits that share people: unlearning would ascend and descend on the same facts.

    The project's own splits are disjoint by construction; this guards splits supplied through
    the catalog.
    """
    shared = sorted(set(forget[id_column]) & set(retain[id_column]))
    if shared:
        listed = ", ".join(map(str, shared[:_MAX_LISTED])) + (
            " …" if len(shared) > _MAX_LISTED else ""
        )
        raise ValueError(
            f"{len(shared)} people are in both forget_split and retain_split ({listed}): "
            "expected disjoint splits; a person is either forgotten or retained"
        )
