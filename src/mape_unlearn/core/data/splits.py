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

__all__ = ["check_retain_size", "choose_forget_people", "hold_out_people", "listed_ids"]

_MAX_LISTED = 10
ID_LIST = "<listed ids>"  # the column of a list of ids: a .txt file or a one-column CSV


def listed_ids(values: Sequence[str], known: set[str]) -> tuple[list[str], str | None]:
    """The ids of a list of ids, and its header (None when it has none).

    The first line is a header when it is not an id of the data (``known``): ``author_id`` or
    ``id`` above a column of ids is a header, a first line that is an id is an id. Duplicates
    are dropped, order is kept.
    """
    values = [str(v) for v in values]
    header = values[0] if values and values[0] not in known else None
    ids = list(dict.fromkeys(values[1:] if header is not None else values))
    if not ids:
        raise ValueError(
            f"the deletion request lists no ids: its only line {header!r} is not an id of the "
            "data, so it was read as a header; expected one id per line"
        )
    return ids, header


def hold_out_people(
    qa: pd.DataFrame,
    fraction: float,
    seed: int,
    id_column: str = "person_id",
    ids: Sequence[str] | None = None,
    requested: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``qa`` by person into ``(trained_on, holdout)``, deterministic in ``seed``.

    ``ids`` lists the holdout people (people the model never saw) and overrides ``fraction``.
    Otherwise ``round(fraction * n_people)`` people (at least 1 when ``fraction > 0``; Python's
    ``round``, ties to even) are drawn at random, never one of ``requested`` (the people of the
    deletion request, who must be trained on to be forgotten): the people are shuffled once
    and the first ones not requested are held out, so a request that does not name a drawn
    person leaves the holdout as it is without the request. At least 2 people must be left to
    train on (one to forget, one to retain). Row order within each output follows ``qa``;
    indexes are reset.
    """
    person_ids = _person_ids(qa, id_column)
    people = sorted(person_ids.unique().tolist())
    n_people = len(people)
    if ids is not None:
        chosen = _check_holdout_ids(ids, people, requested, id_column)
        what = f"holdout.ids ({len(chosen)} people)"
    else:
        fraction = _check_fraction("holdout.fraction", fraction, allow_zero=True)
        rng = random.Random(_check_seed("holdout.seed", seed))
        n_holdout = round(fraction * n_people)
        if fraction > 0:
            n_holdout = max(1, n_holdout)
        what = f"holdout.fraction={fraction!r} ({n_holdout} people)"
        rng.shuffle(people)
        kept = set(requested)
        chosen = [person for person in people if person not in kept][:n_holdout]
    if n_people - len(chosen) < 2:
        raise ValueError(
            f"{what} leaves {n_people - len(chosen)} trained-on people out of {n_people}: "
            "expected at least 2 (one to forget, one to retain)"
        )
    in_holdout = person_ids.isin(set(chosen))
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


def check_pretrained_holdout(fraction: float, ids: Sequence[str] | None, original: str) -> None:
    """Refuse a drawn holdout for the user's own model (``train.original: pretrained``).

    Its model was trained on the user's data, so drawn people are members: comparing them
    with the forgotten (also members) would measure nothing. The holdout must be listed
    (people the model never saw) or empty.
    """
    if original == "pretrained" and ids is None and fraction > 0:
        raise ValueError(
            f"data_prep.holdout.fraction={fraction!r} is not allowed with train.original: "
            "pretrained: a drawn holdout would be people your model was trained on; expected "
            "data_prep.holdout.ids (people your model never saw) or holdout.fraction: 0 (the "
            "holdout metrics and membership-inference AUCs are then NaN)"
        )


def check_retain_size(retain: pd.DataFrame, min_rows: int) -> None:
    """Stop before any heavy work when the retain set is too small for the retain-side Fisher.

    The retain-side importance (docs/method.md §1) is a mean of squared mask gradients over retain
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


def _check_holdout_ids(
    ids: object, people: Sequence[object], requested: Sequence[object], id_column: str
) -> list:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ValueError(f"holdout.ids={ids!r} is not allowed: expected a list of ids or None")
    unique_ids = list(dict.fromkeys(ids))
    unknown = [i for i in unique_ids if i not in set(people)]
    if unknown:
        raise ValueError(
            f"holdout.ids contains {len(unknown)} id(s) not in the data (column "
            f"{id_column!r}): {_listed(unknown)}; expected ids of people in the data"
        )
    both = [i for i in unique_ids if i in set(requested)]
    if both:
        raise ValueError(
            f"holdout.ids and the deletion request both name {len(both)} id(s): "
            f"{_listed(both)}; a holdout person is never trained on, so cannot be forgotten: "
            "remove them from one of the two"
        )
    return unique_ids


def _listed(ids: Sequence[object]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_MAX_LISTED])
    return shown + (f" (and {len(ids) - _MAX_LISTED} more)" if len(ids) > _MAX_LISTED else "")


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
