"""Tests for the two-step person-level split: holdout first, then forget / retain."""

from __future__ import annotations

import pandas as pd
import pytest

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.splits import choose_forget_people, hold_out_people


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_people_qa(n_people=20, seed=0)


@pytest.fixture(scope="module")
def trained_on(qa: pd.DataFrame) -> pd.DataFrame:
    return hold_out_people(qa, fraction=0.2, seed=0)[0]


def people_of(frame: pd.DataFrame, column: str = "person_id") -> set[str]:
    return set(frame[column])


def assert_rows_of(part: pd.DataFrame, source: pd.DataFrame) -> None:
    """``part`` holds exactly the rows of its people in ``source``, in order, index reset."""
    expected = source[source["person_id"].isin(people_of(part))].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)


# hold_out_people


def test_hold_out_disjoint_and_complete(qa: pd.DataFrame) -> None:
    trained_on, holdout = hold_out_people(qa, fraction=0.2, seed=0)
    assert not people_of(trained_on) & people_of(holdout)
    assert people_of(trained_on) | people_of(holdout) == people_of(qa)
    assert len(trained_on) + len(holdout) == len(qa)
    for part in (trained_on, holdout):
        assert_rows_of(part, qa)


def test_hold_out_counts(qa: pd.DataFrame) -> None:
    trained_on, holdout = hold_out_people(qa, fraction=0.25, seed=0)
    assert (len(people_of(trained_on)), len(people_of(holdout))) == (15, 5)
    # zero holdout is allowed and keeps the columns
    trained_on, holdout = hold_out_people(qa, fraction=0.0, seed=0)
    assert holdout.empty and list(holdout.columns) == list(qa.columns)
    pd.testing.assert_frame_equal(trained_on, qa.reset_index(drop=True))
    # a positive fraction never rounds down to nobody
    assert len(people_of(hold_out_people(qa, fraction=0.01, seed=0)[1])) == 1
    # the largest holdout that leaves two people to train on
    assert len(people_of(hold_out_people(qa, fraction=0.9, seed=0)[0])) == 2


def test_hold_out_deterministic_and_seed_dependent(qa: pd.DataFrame) -> None:
    a = hold_out_people(qa, 0.2, seed=7)
    b = hold_out_people(qa, 0.2, seed=7)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    # independent of the input row order
    shuffled = qa.sample(frac=1.0, random_state=0)
    assert people_of(hold_out_people(shuffled, 0.2, seed=7)[1]) == people_of(a[1])
    others = [people_of(hold_out_people(qa, 0.2, seed=s)[1]) for s in range(1, 6)]
    assert any(o != people_of(a[1]) for o in others)


# choose_forget_people


def test_forget_disjoint_and_complete(trained_on: pd.DataFrame) -> None:
    forget, retain = choose_forget_people(trained_on, fraction=0.25, seed=0)
    assert not people_of(forget) & people_of(retain)
    assert people_of(forget) | people_of(retain) == people_of(trained_on)
    assert len(forget) + len(retain) == len(trained_on)
    for part in (forget, retain):
        assert_rows_of(part, trained_on)


def test_forget_counts(trained_on: pd.DataFrame) -> None:
    forget, retain = choose_forget_people(trained_on, fraction=0.25, seed=0)  # of 16 people
    assert (len(people_of(forget)), len(people_of(retain))) == (4, 12)
    # a tiny fraction still forgets one person
    assert len(people_of(choose_forget_people(trained_on, 0.001, seed=0)[0])) == 1
    # two people: one to forget, one to retain
    two = trained_on[trained_on["person_id"].isin(sorted(people_of(trained_on))[:2])]
    forget, retain = choose_forget_people(two, 0.5, seed=0)
    assert (len(people_of(forget)), len(people_of(retain))) == (1, 1)


def test_forget_ids_honoured(trained_on: pd.DataFrame) -> None:
    ids = sorted(people_of(trained_on))[3:6]
    forget, retain = choose_forget_people(trained_on, 0.9, seed=0, ids=ids + [ids[0]])
    assert people_of(forget) == set(ids)
    assert people_of(retain) == people_of(trained_on) - set(ids)
    assert_rows_of(forget, trained_on)
    # ids override the fraction and the seed
    other, _ = choose_forget_people(trained_on, 0.5, seed=3, ids=ids)
    pd.testing.assert_frame_equal(other, forget)


def test_forget_deterministic_and_seed_dependent(trained_on: pd.DataFrame) -> None:
    a = choose_forget_people(trained_on, 0.25, seed=7)
    b = choose_forget_people(trained_on, 0.25, seed=7)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    shuffled = trained_on.sample(frac=1.0, random_state=0)
    assert people_of(choose_forget_people(shuffled, 0.25, seed=7)[0]) == people_of(a[0])
    others = [people_of(choose_forget_people(trained_on, 0.25, seed=s)[0]) for s in range(1, 6)]
    assert any(o != people_of(a[0]) for o in others)


def test_custom_id_column() -> None:
    frame = pd.DataFrame({"who": ["a", "a", "b", "c", "d"], "x": range(5)})
    trained_on, holdout = hold_out_people(frame, 0.25, seed=0, id_column="who")
    assert len(people_of(holdout, "who")) == 1
    forget, retain = choose_forget_people(trained_on, 0.34, seed=0, id_column="who")
    assert len(people_of(forget, "who")) == 1 and len(people_of(retain, "who")) == 2
    forget, _ = choose_forget_people(frame, 0.5, seed=0, ids=["a"], id_column="who")
    assert list(forget["x"]) == [0, 1]


# the property the stage cache relies on


def test_trained_on_does_not_depend_on_the_forget_request(qa: pd.DataFrame) -> None:
    """Nothing about the deletion request reaches the holdout step, so changing the forget
    fraction, ids or seed leaves the trained-on rows (and the holdout) identical."""
    trained_on, holdout = hold_out_people(qa, fraction=0.2, seed=0)
    requests = [
        {"fraction": 0.1, "seed": 0},
        {"fraction": 0.5, "seed": 0},
        {"fraction": 0.1, "seed": 9},
        {"fraction": 0.1, "seed": 0, "ids": sorted(people_of(trained_on))[:1]},
        {"fraction": 0.1, "seed": 0, "ids": sorted(people_of(trained_on))[-3:]},
    ]
    forgets = []
    for request in requests:
        again, again_holdout = hold_out_people(qa, fraction=0.2, seed=0)
        pd.testing.assert_frame_equal(again, trained_on)
        pd.testing.assert_frame_equal(again_holdout, holdout)
        forget, retain = choose_forget_people(again, **request)
        assert people_of(forget) | people_of(retain) == people_of(trained_on)
        assert not people_of(forget) & people_of(holdout)
        forgets.append(frozenset(people_of(forget)))
    assert len(set(forgets)) == len(requests)  # the requests did pick different people
    # choosing the forget set does not modify its input
    pd.testing.assert_frame_equal(trained_on, hold_out_people(qa, fraction=0.2, seed=0)[0])


# validation: every message names the parameter, the value and what is allowed


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"fraction": 1.0}, r"holdout\.fraction=1\.0 is not allowed: expected .*\[0, 1\)"),
        ({"fraction": -0.5}, r"holdout\.fraction=-0\.5 is not allowed"),
        ({"fraction": float("nan")}, r"holdout\.fraction=nan is not allowed"),
        ({"fraction": True}, r"holdout\.fraction=True is not allowed"),
        ({"fraction": "0.1"}, r"holdout\.fraction='0\.1' is not allowed"),
        (
            {"fraction": 0.95},
            r"holdout\.fraction=0\.95 \(19 people\) leaves 1 trained-on people out of 20: "
            r"expected at least 2",
        ),
        ({"seed": 1.5}, r"holdout\.seed=1\.5 is not allowed: expected an integer"),
        ({"seed": None}, r"holdout\.seed=None is not allowed"),
        ({"id_column": "nobody"}, r"id_column='nobody' is not allowed: .*expected one of"),
    ],
)
def test_hold_out_validation(qa: pd.DataFrame, kwargs: dict, pattern: str) -> None:
    args = {"fraction": 0.1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        hold_out_people(qa, **args)


def test_hold_out_needs_two_people() -> None:
    frame = pd.DataFrame({"person_id": ["a", "a"]})
    with pytest.raises(ValueError, match=r"holdout\.fraction=0\.0 .* leaves 1 trained-on"):
        hold_out_people(frame, 0.0, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"fraction": 0.0}, r"forget\.fraction=0\.0 is not allowed: expected .*\(0, 1\)"),
        ({"fraction": 1.0}, r"forget\.fraction=1\.0 is not allowed"),
        ({"fraction": -0.1}, r"forget\.fraction=-0\.1 is not allowed"),
        ({"fraction": float("inf")}, r"forget\.fraction=inf is not allowed"),
        ({"fraction": True}, r"forget\.fraction=True is not allowed"),
        (
            {"fraction": 0.99},
            r"forget\.fraction=0\.99 \(16 people\) leaves no retain people out of 16 "
            r"trained-on people: expected at least 1",
        ),
        ({"seed": 1.5}, r"forget\.seed=1\.5 is not allowed: expected an integer"),
        ({"seed": True}, r"forget\.seed=True is not allowed"),
        ({"ids": []}, r"forget\.ids=\[\] is not allowed: expected a non-empty list"),
        ({"ids": "p001"}, r"forget\.ids='p001' is not allowed: expected a list"),
        ({"ids": 3}, r"forget\.ids=3 is not allowed: expected a list"),
        ({"ids": ["zz", "yy"]}, r"forget\.ids contains 2 id\(s\) not in the trained-on data.*'zz'"),
        ({"id_column": "nobody"}, r"id_column='nobody' is not allowed: .*expected one of"),
    ],
)
def test_forget_validation(trained_on: pd.DataFrame, kwargs: dict, pattern: str) -> None:
    args = {"fraction": 0.1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        choose_forget_people(trained_on, **args)


def test_forget_ids_cannot_take_everyone(trained_on: pd.DataFrame) -> None:
    everyone = sorted(people_of(trained_on))
    with pytest.raises(ValueError, match=r"forget\.ids \(16 people\) leaves no retain people"):
        choose_forget_people(trained_on, 0.1, seed=0, ids=everyone)


def test_holdout_person_is_not_in_the_trained_on_data(qa: pd.DataFrame) -> None:
    trained_on, holdout = hold_out_people(qa, fraction=0.2, seed=0)
    held = sorted(people_of(holdout))[0]
    with pytest.raises(ValueError) as info:
        choose_forget_people(trained_on, 0.1, seed=0, ids=[sorted(people_of(trained_on))[0], held])
    message = str(info.value)
    expected = f"contains 1 id(s) not in the trained-on data (column 'person_id'): {held!r};"
    assert expected in message
    assert "holdout" in message


def test_unknown_forget_ids_listed_at_most_ten(trained_on: pd.DataFrame) -> None:
    unknown = [f"x{i:02d}" for i in range(25)]
    with pytest.raises(ValueError) as info:
        choose_forget_people(trained_on, 0.1, seed=0, ids=unknown)
    message = str(info.value)
    assert "forget.ids contains 25 id(s)" in message and "(and 15 more)" in message
    assert "'x09'" in message and "'x10'" not in message


def test_missing_ids_rejected() -> None:
    frame = pd.DataFrame({"person_id": ["a", None, "b", "c"]})
    with pytest.raises(ValueError, match=r"id_column='person_id' has 1 missing value"):
        hold_out_people(frame, 0.0, seed=0)
    with pytest.raises(ValueError, match=r"id_column='person_id' has 1 missing value"):
        choose_forget_people(frame, 0.3, seed=0)


def test_splits_sharing_people_are_refused():
    from mape_unlearn.core.data.splits import check_disjoint

    forget = pd.DataFrame({"person_id": ["p1", "p2"]})
    check_disjoint(forget, pd.DataFrame({"person_id": ["p3"]}))  # disjoint: fine
    with pytest.raises(
        ValueError, match=r"1 people are in both forget_split and retain_split \(p2\)"
    ):
        check_disjoint(forget, pd.DataFrame({"person_id": ["p2", "p3"]}))
