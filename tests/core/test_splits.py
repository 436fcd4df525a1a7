"""Tests for the person-level forget / retain / holdout split."""

from __future__ import annotations

import pandas as pd
import pytest

from mape_unlearn.core.people import generate_people_qa
from mape_unlearn.core.splits import Splits, split_by_person


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_people_qa(n_people=20, seed=0)


def people_of(frame: pd.DataFrame, column: str = "person_id") -> set[str]:
    return set(frame[column])


def test_disjoint_and_complete(qa: pd.DataFrame) -> None:
    splits = split_by_person(qa, forget_fraction=0.1, holdout_fraction=0.2, seed=0)
    forget, retain, holdout = (people_of(s) for s in (splits.forget, splits.retain, splits.holdout))
    assert not forget & retain and not forget & holdout and not retain & holdout
    assert forget | retain | holdout == people_of(qa)
    assert len(splits.forget) + len(splits.retain) + len(splits.holdout) == len(qa)


def test_counts(qa: pd.DataFrame) -> None:
    splits = split_by_person(qa, forget_fraction=0.1, holdout_fraction=0.25, seed=0)
    assert len(people_of(splits.forget)) == 2
    assert len(people_of(splits.holdout)) == 5
    assert len(people_of(splits.retain)) == 13
    # tiny fraction still forgets one person; zero holdout is allowed
    tiny = split_by_person(qa, forget_fraction=0.001, holdout_fraction=0.0, seed=0)
    assert len(people_of(tiny.forget)) == 1
    assert tiny.holdout.empty and list(tiny.holdout.columns) == list(qa.columns)
    assert len(people_of(tiny.retain)) == 19
    # a positive holdout fraction never rounds down to nobody
    small = split_by_person(qa, forget_fraction=0.1, holdout_fraction=0.01, seed=0)
    assert len(people_of(small.holdout)) == 1


def test_whole_people_and_row_order_kept(qa: pd.DataFrame) -> None:
    splits = split_by_person(qa, forget_fraction=0.2, holdout_fraction=0.2, seed=4)
    for part in (splits.forget, splits.retain, splits.holdout):
        assert list(part.index) == list(range(len(part)))
        expected = qa[qa["person_id"].isin(people_of(part))].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected)


def test_forget_ids_honoured(qa: pd.DataFrame) -> None:
    ids = ["p003", "p011", "p017"]
    splits = split_by_person(qa, 0.5, holdout_fraction=0.1, seed=0, forget_ids=ids)
    assert people_of(splits.forget) == set(ids)
    assert len(people_of(splits.holdout)) == 2
    assert not people_of(splits.holdout) & set(ids)
    assert len(people_of(splits.retain)) == 15


def test_deterministic_and_seed_dependent(qa: pd.DataFrame) -> None:
    a = split_by_person(qa, 0.2, 0.2, seed=7)
    b = split_by_person(qa, 0.2, 0.2, seed=7)
    assert isinstance(a, Splits)
    for x, y in ((a.forget, b.forget), (a.retain, b.retain), (a.holdout, b.holdout)):
        pd.testing.assert_frame_equal(x, y)
    # independent of the input row order
    shuffled = qa.sample(frac=1.0, random_state=0)
    c = split_by_person(shuffled, 0.2, 0.2, seed=7)
    assert people_of(c.forget) == people_of(a.forget)
    assert people_of(c.holdout) == people_of(a.holdout)
    others = [people_of(split_by_person(qa, 0.2, 0.2, seed=s).forget) for s in range(1, 6)]
    assert any(o != people_of(a.forget) for o in others)


def test_custom_id_column() -> None:
    frame = pd.DataFrame({"who": ["a", "a", "b", "c", "d"], "x": range(5)})
    splits = split_by_person(frame, 0.25, 0.25, seed=0, id_column="who")
    assert len(people_of(splits.forget, "who")) == 1
    assert len(people_of(splits.holdout, "who")) == 1
    assert len(people_of(splits.retain, "who")) == 2


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"forget_fraction": 0.0}, r"forget_fraction=0\.0 is not allowed: expected .*\(0, 1\)"),
        ({"forget_fraction": 1.0}, r"forget_fraction=1\.0 is not allowed"),
        ({"forget_fraction": -0.1}, r"forget_fraction=-0\.1 is not allowed"),
        ({"forget_fraction": float("nan")}, r"forget_fraction=nan is not allowed"),
        ({"forget_fraction": True}, r"forget_fraction=True is not allowed"),
        ({"holdout_fraction": 1.0}, r"holdout_fraction=1\.0 is not allowed: expected .*\[0, 1\)"),
        ({"holdout_fraction": -0.5}, r"holdout_fraction=-0\.5 is not allowed"),
        (
            {"forget_fraction": 0.6, "holdout_fraction": 0.4},
            r"forget_fraction=0\.6 .* holdout_fraction=0\.4 .* leave no retain people",
        ),
        ({"forget_ids": []}, r"forget_ids=\[\] is not allowed"),
        ({"forget_ids": "p001"}, r"forget_ids='p001' is not allowed: expected a list"),
        ({"forget_ids": ["p001", "zz", "yy"]}, r"forget_ids contains 2 id\(s\).*'zz', 'yy'"),
        (
            {"forget_ids": [f"p{i:03d}" for i in range(15)], "holdout_fraction": 0.3},
            r"forget_ids \(15 people\) and holdout_fraction=0\.3 .* leave no retain people",
        ),
        ({"id_column": "nobody"}, r"id_column='nobody' is not allowed: .*expected one of"),
        ({"seed": 1.5}, r"seed=1\.5 is not allowed"),
    ],
)
def test_validation(qa: pd.DataFrame, kwargs: dict, pattern: str) -> None:
    args = {"forget_fraction": 0.1, "holdout_fraction": 0.1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        split_by_person(qa, **args)


def test_unknown_forget_ids_listed_at_most_ten(qa: pd.DataFrame) -> None:
    unknown = [f"x{i:02d}" for i in range(25)]
    with pytest.raises(ValueError) as info:
        split_by_person(qa, 0.1, 0.1, seed=0, forget_ids=unknown)
    message = str(info.value)
    assert "forget_ids" in message and "(and 15 more)" in message
    assert "'x09'" in message and "'x10'" not in message


def test_missing_ids_rejected() -> None:
    frame = pd.DataFrame({"person_id": ["a", None, "b", "c"]})
    with pytest.raises(ValueError, match=r"id_column='person_id' has 1 missing value"):
        split_by_person(frame, 0.3, 0.0, seed=0)
