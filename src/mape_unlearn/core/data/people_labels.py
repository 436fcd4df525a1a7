"""A generated classification task: every fact sentence about a person, labelled with a class
drawn for that person.

The label is a per-person secret, independent of everything the sentences say, so a model can
only know it by having trained on that person's sentences: after forgetting a person, the best
it can do is chance, as a model that never saw them (the retrain reference).
"""

from __future__ import annotations

import random
from numbers import Integral

import pandas as pd

COLUMNS: tuple[str, ...] = ("person_id", "person_name", "template", "text", "label")


def label_people(qa: pd.DataFrame, n_labels: int, seed: int) -> pd.DataFrame:
    """One row per fact of the people QA table (its ``answer`` sentence), with the person's
    class in ``0 .. n_labels - 1``; deterministic in ``seed``."""
    if isinstance(n_labels, bool) or not isinstance(n_labels, Integral) or n_labels < 2:
        raise ValueError(f"n_labels={n_labels!r} is not allowed: expected an integer >= 2")
    rng = random.Random(seed)
    people = qa.person_id.unique()
    label = {person: rng.randrange(n_labels) for person in people}
    return pd.DataFrame(
        {
            "person_id": qa.person_id,
            "person_name": qa.person_name,
            "template": qa.template,
            "text": qa.answer,
            "label": qa.person_id.map(label).astype("int64"),
        },
        columns=list(COLUMNS),
    ).reset_index(drop=True)
