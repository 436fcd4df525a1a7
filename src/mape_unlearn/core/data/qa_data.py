"""A user's question-answer (or classification) table, mapped to the project's columns and
checked.

Every stage reads one table: a row per question, with ``person_id`` (what rows are grouped
by, and so the unit that is held out and forgotten: a person, an author, a document),
``question``, ``answer`` and, optionally, ``paraphrased_answer`` and ``perturbed_answers`` (a
list of plausible wrong answers per row). Only the truth ratio and forget quality need the
optional two; without them those metrics are NaN. An optional ``fact`` column names the words
of each answer that carry its information (else they are derived, see
:mod:`~mape_unlearn.core.data.facts`). A user's data names these columns as it likes: ``columns``
maps each of the project's names to the data's (``None``: absent).

A classification table (:func:`to_label_table`) has ``person_id``, ``text``, optionally
``text_pair``, and ``label``, mapped by ``data_prep.source.label_columns``.

Problems are found here, once, with the column named, rather than as a ``KeyError`` deep in
a later stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "OPTIONAL",
    "PERTURBED",
    "REQUIRED",
    "class_ids",
    "positional_ids",
    "requested_ids",
    "to_label_table",
    "to_qa_table",
]

ID, QUESTION, ANSWER = "person_id", "question", "answer"
PARAPHRASED, PERTURBED, FACT = "paraphrased_answer", "perturbed_answers", "fact"
REQUIRED: tuple[str, ...] = (ID, QUESTION, ANSWER)
OPTIONAL: tuple[str, ...] = (PARAPHRASED, PERTURBED)  # truth ratio and forget quality need them

_PARAMETER = "data_prep.source.columns"
_MAX_LISTED = 20


def to_qa_table(
    frame: pd.DataFrame, columns: Mapping[str, str | None], rows_per_person: int | None = None
) -> pd.DataFrame:
    """The project's QA table from a user's ``frame``, in the project's column names.

    ``columns`` maps every name of ``REQUIRED`` and ``OPTIONAL`` to the data's column (``None``
    for an absent optional one). Ids become strings (``7`` and ``"7"`` are the same person);
    texts must be non-empty; perturbed answers a non-empty list of texts per row (in a CSV
    file: a JSON list such as ``["a", "b"]``). Other columns are dropped. ``rows_per_person``
    (the id column mapped to ``None``): ids from row positions, :func:`positional_ids`.
    """
    if rows_per_person is not None:
        frame = frame.assign(**{ID: positional_ids(len(frame), rows_per_person)})
        columns = {**columns, ID: ID}
    table = _mapped(
        frame, columns, REQUIRED, (*OPTIONAL, FACT), (ID, QUESTION, ANSWER, PARAPHRASED, FACT)
    )
    if PERTURBED in table:
        table[PERTURBED] = _text_lists(table[PERTURBED], columns[PERTURBED])
    return table.reset_index(drop=True)


def positional_ids(n_rows: int, rows_per_person: int) -> list[str]:
    """The person id of each row of a file without an id column whose people each have
    ``rows_per_person`` consecutive rows (TOFU: 20 per author): ``p000`` for the first block,
    ``p001`` for the next, ... (as the generator numbers its people).

    The blocks must cover the rows exactly: a remainder would be a partial person, a sign that
    the count or the file is not what was meant, so it is refused rather than guessed at.
    """
    if rows_per_person < 1 or n_rows < rows_per_person or n_rows % rows_per_person:
        raise ValueError(
            f"data_prep.source.rows_per_person={rows_per_person} is not allowed for data of "
            f"{n_rows} rows ({n_rows % max(rows_per_person, 1)} left over): expected the number "
            "of consecutive rows each person has, dividing the rows (TOFU: 20 per author)"
        )
    width = max(3, len(str(n_rows // rows_per_person - 1)))
    return [f"p{row // rows_per_person:0{width}d}" for row in range(n_rows)]


TEXT, TEXT_PAIR, LABEL = "text", "text_pair", "label"
LABEL_REQUIRED: tuple[str, ...] = (ID, TEXT, LABEL)
LABEL_OPTIONAL: tuple[str, ...] = (TEXT_PAIR,)

_LABELS = "data_prep.source.label_columns"


def to_label_table(
    frame: pd.DataFrame, columns: Mapping[str, str | None]
) -> tuple[pd.DataFrame, list[str]]:
    """The project's classification table from a user's ``frame``, and the label of each class
    id (``names[i]`` is the data's label of class ``i``). Other columns are dropped.

    Labels become class ids ``0 .. k-1``: non-negative integers are kept (a model fine-tuned on
    them expects them), any other labels are numbered in sorted order.
    """
    table = _mapped(
        frame, columns, LABEL_REQUIRED, LABEL_OPTIONAL, (ID, TEXT, TEXT_PAIR), parameter=_LABELS
    )
    table[LABEL], names = class_ids(table[LABEL], columns[LABEL])
    return table.reset_index(drop=True), names


def class_ids(values: pd.Series, theirs: str | None) -> tuple[pd.Series, list[str]]:
    """Class ids for a label column, and the label of each id (see :func:`to_label_table`)."""
    missing = [i for i, value in enumerate(values) if np.ndim(value) == 0 and pd.isna(value)]
    if missing:
        raise ValueError(
            f"column {theirs!r} ({_LABELS}.{LABEL}) has no label in {len(missing)} row(s): "
            f"{_rows(missing)}; expected a label in every row"
        )
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all() and (numbers >= 0).all():
        ids = numbers.astype("int64")
        return ids, [str(i) for i in range(int(ids.max()) + 1)]
    names = sorted({str(value) for value in values})
    index = {name: i for i, name in enumerate(names)}
    return values.map(lambda value: index[str(value)]).astype("int64"), names


def _mapped(
    frame: pd.DataFrame,
    columns: Mapping[str, str | None],
    required: tuple[str, ...],
    optional: tuple[str, ...],
    texts: tuple[str, ...],
    parameter: str = _PARAMETER,
) -> pd.DataFrame:
    """The mapped columns of ``frame`` under the project's names, ``texts`` checked non-empty
    (ids become strings); the mapping itself checked against ``required`` and ``optional``."""
    unknown = sorted(set(columns) - {*required, *optional})
    absent = [name for name in required if columns.get(name) is None]
    if unknown or absent:
        raise ValueError(
            f"{parameter} names {unknown or absent} wrongly: expected a column name for each "
            f"of {list(required)} and a name or null for each of {list(optional)}"
        )
    table = pd.DataFrame(
        {
            ours: _column(frame, theirs, ours, parameter=parameter)
            for ours, theirs in columns.items()
            if theirs
        }
    )
    for name in texts:
        if name in table:
            table[name] = _texts(table[name], columns[name], name, parameter=parameter)
    return table


def requested_ids(request: pd.DataFrame, id_column: str | None) -> list[str]:
    """The ids of a deletion request: the distinct values of its ``id_column``, in order.

    The request may list ids alone or whole rows of the data (any columns besides the id).
    ``id_column`` ``None``: the data's ids come from row positions, which no table carries.
    """
    if id_column is None:
        raise ValueError(
            f"the deletion request is a table (columns {list(request.columns)}) but the data has "
            "no id column (data_prep.source.rows_per_person): list the people's ids instead, "
            "one per line (p000 for the first rows_per_person rows, p001 for the next, ...)"
        )
    ids = _column(request, id_column, ID, what="the deletion request")
    if ids.isna().any():
        raise ValueError(
            f"the deletion request has {int(ids.isna().sum())} row(s) without an id in column "
            f"{id_column!r}: expected an id in every row"
        )
    return list(dict.fromkeys(ids.astype(str)))


def _column(
    frame: pd.DataFrame,
    theirs: str,
    ours: str,
    what: str = "the data",
    parameter: str = _PARAMETER,
) -> pd.Series:
    if theirs not in frame.columns:
        raise ValueError(
            f"column {theirs!r} ({parameter}.{ours}) is not in {what}; columns found: "
            f"{list(frame.columns)}"
        )
    return frame[theirs]


def _is_empty(value: object) -> bool:
    return bool(np.ndim(value) == 0 and pd.isna(value)) or not str(value).strip()


def _rows(positions: list[int]) -> str:
    more = f" (and {len(positions) - _MAX_LISTED} more)" if len(positions) > _MAX_LISTED else ""
    return ", ".join(map(str, positions[:_MAX_LISTED])) + more


def _texts(
    values: pd.Series, theirs: str | None, ours: str, parameter: str = _PARAMETER
) -> pd.Series:
    empty = [i for i, value in enumerate(values) if _is_empty(value)]
    if empty:
        raise ValueError(
            f"column {theirs!r} ({parameter}.{ours}) is empty in {len(empty)} row(s): "
            f"{_rows(empty)}; expected text in every row"
        )
    return values.map(str)


def _text_lists(values: pd.Series, theirs: str | None) -> pd.Series:
    where = f"column {theirs!r} ({_PARAMETER}.{PERTURBED})"
    lists = []
    for row, value in enumerate(values):
        if isinstance(value, str):  # CSV: a JSON list in the cell
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        if not isinstance(value, list | tuple | np.ndarray) or len(value) == 0:
            raise ValueError(
                f"{where} holds {values.iloc[row]!r} in row {row}: expected a non-empty list of "
                'wrong answers per row (in a CSV file, a JSON list such as ["a", "b"])'
            )
        if any(_is_empty(answer) for answer in value):
            raise ValueError(f"{where} has an empty answer in row {row}: expected text")
        lists.append([str(answer) for answer in value])
    return pd.Series(lists, index=values.index, dtype=object)
