"""Tests for the fictitious-people QA generator."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mape_unlearn.core.data import people
from mape_unlearn.core.data.people import (
    COLUMNS,
    N_PERTURBED,
    TEMPLATE_IDS,
    generate_people_qa,
    max_people,
)

TEXT_COLUMNS = ["person_id", "person_name", "template", "question", "answer", "paraphrased_answer"]
# lower-case words / numbers / punctuation separated by single spaces
TOKENIZABLE = re.compile(r"^[a-z0-9'?.]+( [a-z0-9'?.]+)*$")


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_people_qa(n_people=40, seed=0)


def test_deterministic_for_a_seed(qa: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(qa, generate_people_qa(n_people=40, seed=0))


def test_differs_across_seeds(qa: pd.DataFrame) -> None:
    other = generate_people_qa(n_people=40, seed=1)
    assert set(other["person_name"]) != set(qa["person_name"])
    assert not other["answer"].equals(qa["answer"])


def test_columns_and_types(qa: pd.DataFrame) -> None:
    assert list(qa.columns) == list(COLUMNS)
    assert list(COLUMNS) == [*TEXT_COLUMNS, "perturbed_answers", "fact"]
    for column in TEXT_COLUMNS:
        assert all(isinstance(v, str) for v in qa[column]), column
    assert all(isinstance(v, list) for v in qa["perturbed_answers"])
    assert all(isinstance(a, str) for v in qa["perturbed_answers"] for a in v)
    # the fact is the attribute's value as the answer writes it, never the person's name
    assert all(f in a for f, a in zip(qa["fact"], qa["answer"], strict=True))
    assert not any(f in n for f, n in zip(qa["fact"], qa["person_name"], strict=True))


def test_one_row_per_person_and_template_in_order(qa: pd.DataFrame) -> None:
    assert len(TEMPLATE_IDS) >= 8
    assert len(qa) == 40 * len(TEMPLATE_IDS)
    assert not qa.duplicated(["person_id", "template"]).any()
    expected_ids = [f"p{i:03d}" for i in range(40)]
    assert list(qa["person_id"]) == [pid for pid in expected_ids for _ in TEMPLATE_IDS]
    assert list(qa["template"]) == list(TEMPLATE_IDS) * 40
    # one name per person id
    assert (qa.groupby("person_id")["person_name"].nunique() == 1).all()


def test_perturbed_answers_are_distinct_and_wrong(qa: pd.DataFrame) -> None:
    for row in qa.itertuples():
        perturbed = row.perturbed_answers
        assert len(perturbed) == N_PERTURBED >= 3
        assert len(set(perturbed)) == len(perturbed)
        assert row.answer not in perturbed
        assert row.paraphrased_answer != row.answer
        # same wording, other value: the person is still named
        assert all(row.person_name in p for p in perturbed)


def test_answers_name_the_person_and_the_value(qa: pd.DataFrame) -> None:
    for row in qa.itertuples():
        for text in (row.question, row.answer, row.paraphrased_answer):
            assert row.person_name in text
    # the value is shared by answer and paraphrase: removing the name leaves common words
    row = qa[qa["template"] == "birth_city"].iloc[0]
    city = row["answer"].split()[-2]
    assert city in people.CITIES
    assert row["paraphrased_answer"].startswith(f"{city} ")


def test_names_unique(qa: pd.DataFrame) -> None:
    names = qa.drop_duplicates("person_id")["person_name"]
    assert names.is_unique
    big = generate_people_qa(n_people=max_people(), seed=3)
    assert big["person_name"].nunique() == max_people()


def test_values_are_shared_sometimes_but_not_always() -> None:
    qa = generate_people_qa(n_people=100, seed=0)
    cities = qa.loc[qa["template"] == "birth_city", "answer"].str.split().str[-2]
    assert 1 < cities.nunique() < 100


def values_of(qa: pd.DataFrame) -> dict[str, list[str]]:
    """Each template's true value per row, read back by matching the answer's wording."""
    values: dict[str, list[str]] = {t.template_id: [] for t in people.TEMPLATES}
    for template in people.TEMPLATES:
        rows = qa[qa["template"] == template.template_id]
        for row in rows.itertuples():
            surname = row.person_name.split()[-1]
            (value,) = [
                v
                for v in template.values
                if template.answer.format(**people._fields(row.person_name, surname, v))
                == row.answer
            ]
            values[template.template_id].append(value)
    return values


def test_distinct_values_are_shared_by_no_two_people() -> None:
    n_shortest = min(len(t.values) for t in people.TEMPLATES)
    assert n_shortest == len(people.COLOURS) == 30
    qa = generate_people_qa(n_people=30, seed=0, distinct_values=True)
    for template_id, values in values_of(qa).items():
        assert len(values) == 30
        assert len(set(values)) == 30, template_id


def test_distinct_values_are_dealt_evenly_beyond_the_shortest_list() -> None:
    qa = generate_people_qa(n_people=65, seed=0, distinct_values=True)
    for template in people.TEMPLATES:
        counts = pd.Series(values_of(qa)[template.template_id]).value_counts()
        counts = counts.reindex(list(template.values), fill_value=0)
        assert counts.max() - counts.min() <= 1, template.template_id
        if template.values is people.COLOURS:  # 65 people over 30 colours: 2 or 3 each
            assert set(counts) == {2, 3}


def test_distinct_values_keep_names_and_perturbed_answers() -> None:
    distinct = generate_people_qa(n_people=40, seed=0, distinct_values=True)
    independent = generate_people_qa(n_people=40, seed=0)
    # the names are drawn first, so the same people; only their values differ
    assert list(distinct["person_name"]) == list(independent["person_name"])
    assert not distinct["answer"].equals(independent["answer"])
    for row in distinct.itertuples():
        assert len(set(row.perturbed_answers)) == N_PERTURBED
        assert row.paraphrased_answer not in row.perturbed_answers
    pd.testing.assert_frame_equal(
        distinct, generate_people_qa(n_people=40, seed=0, distinct_values=True)
    )


def test_default_draws_values_independently() -> None:
    default = generate_people_qa(n_people=100, seed=0)
    pd.testing.assert_frame_equal(default, generate_people_qa(100, 0, distinct_values=False))
    shared = values_of(default)
    assert all(len(set(values)) < 100 for values in shared.values())


def test_text_is_lowercase_and_space_separated(qa: pd.DataFrame) -> None:
    columns = ["person_name", "question", "answer", "paraphrased_answer"]
    texts = [t for c in columns for t in qa[c]]
    texts += [p for ps in qa["perturbed_answers"] for p in ps]
    bad = [t for t in texts if not TOKENIZABLE.match(t)]
    assert bad == []


def test_value_pools_have_no_duplicates() -> None:
    for template in people.TEMPLATES:
        assert len(set(template.values)) == len(template.values) >= 30, template.template_id
    assert len(set(people.FIRST_NAMES)) == len(people.FIRST_NAMES)
    assert len(set(people.LAST_NAMES)) == len(people.LAST_NAMES)


@pytest.mark.parametrize("bad", [0, -3, max_people() + 1, 2.5, True, "10"])
def test_invalid_n_people(bad: object) -> None:
    with pytest.raises(ValueError, match=r"n_people=.* is not allowed: expected an integer"):
        generate_people_qa(n_people=bad)  # type: ignore[arg-type]


def test_invalid_n_people_message() -> None:
    with pytest.raises(ValueError) as info:
        generate_people_qa(n_people=0)
    assert str(info.value).startswith("n_people=0 is not allowed: expected an integer >= 1")


def test_invalid_seed() -> None:
    with pytest.raises(ValueError, match="seed="):
        generate_people_qa(n_people=2, seed="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_invalid_distinct_values(bad: object) -> None:
    with pytest.raises(ValueError, match=r"distinct_values=.* is not allowed: expected true"):
        generate_people_qa(n_people=2, distinct_values=bad)  # type: ignore[arg-type]


def test_numpy_integers_accepted() -> None:
    pd.testing.assert_frame_equal(
        generate_people_qa(np.int64(5), np.int64(2)), generate_people_qa(5, 2)
    )
