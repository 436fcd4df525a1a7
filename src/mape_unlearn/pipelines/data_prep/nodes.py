"""Nodes of `data_prep`: the QA data (generated or the user's), person-level splits and the
tokenizer."""

from __future__ import annotations

import logging
from typing import get_args

import pandas as pd
from transformers import PreTrainedTokenizerFast

from mape_unlearn.core.people import generate_people_qa
from mape_unlearn.core.people_labels import label_people
from mape_unlearn.core.qa_data import OPTIONAL, requested_ids, to_label_table, to_qa_table
from mape_unlearn.core.splits import check_retain_size, choose_forget_people, hold_out_people
from mape_unlearn.core.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.params import (
    ForgetParams,
    GeneratorParams,
    HoldoutParams,
    QASourceParams,
    Task,
)

log = logging.getLogger(__name__)


def _classification(task: Task) -> bool:
    """Whether ``data_prep.task`` asks for classification; a misspelt task stops here."""
    if task not in get_args(Task):
        raise ValueError(
            f"data_prep.task={task!r} is not allowed: expected one of {list(get_args(Task))}"
        )
    return task == "classification"


def generate_qa(task: Task, params: GeneratorParams) -> pd.DataFrame:
    """Generate the fictitious-people table: questions and answers, or (``task:
    classification``) their fact sentences labelled with a class drawn per person; with
    ``distinct_values`` the people share no attribute value (up to 30 people)."""
    qa = generate_people_qa(params.n_people, params.seed, params.distinct_values)
    values = "distinct" if params.distinct_values else "independently drawn"
    if _classification(task):
        qa = label_people(qa, params.n_labels, params.seed)
        log.info(
            "generated %d sentences about %d people (%s values) in %d classes",
            len(qa),
            params.n_people,
            values,
            params.n_labels,
        )
        return qa
    log.info("generated %d questions about %d people (%s values)", len(qa), params.n_people, values)
    return qa


def read_qa(table: pd.DataFrame, params: QASourceParams, task: Task) -> pd.DataFrame:
    """The user's table in the project's column names, checked: question-answer pairs, or
    (``task: classification``) texts with class ids."""
    if _classification(task):
        qa, names = to_label_table(table, params.label_columns.model_dump())
        log.info(
            "read %d labelled texts about %d people in %d classes (class id: label %s)",
            len(qa),
            qa.person_id.nunique(),
            len(names),
            dict(enumerate(names)),
        )
        return qa
    qa = to_qa_table(table, params.columns.model_dump())
    missing = [name for name in OPTIONAL if name not in qa]
    log.info(
        "read %d questions about %d people%s",
        len(qa),
        qa.person_id.nunique(),
        f"; without {missing}: truth ratio and forget quality will be NaN" if missing else "",
    )
    return qa


def read_forget_request(request: pd.DataFrame, params: QASourceParams) -> list[str]:
    """The ids of the people (or documents) listed in the user's deletion-request file."""
    return requested_ids(request, params.columns.person_id)


def hold_out(qa: pd.DataFrame, params: HoldoutParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by person into the trained-on set and the never-trained-on holdout."""
    training, holdout = hold_out_people(qa, params.fraction, params.seed)
    log.info(
        "held out %d people (%d rows); training on %d people (%d rows)",
        holdout.person_id.nunique(),
        len(holdout),
        training.person_id.nunique(),
        len(training),
    )
    return training, holdout


def choose_forget(
    training: pd.DataFrame, params: ForgetParams, requested: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the trained-on people into those to forget and those to retain.

    ``requested``: the ids of the deletion-request file (``forget.from_file``), which override
    ``forget.ids`` and ``forget.fraction``. Stops here, before any training, when the retain
    set is too small for the retain-side Fisher.
    """
    if requested is not None:
        ids, how = requested, "forget_request"
    else:
        ids, how = params.ids, "forget.ids"
    forget, retain = choose_forget_people(training, params.fraction, params.seed, ids, ids_from=how)
    check_retain_size(retain, params.min_retain_rows)
    log.info(
        "forgetting %d people (%d rows, %s); retaining %d people (%d rows)",
        forget.person_id.nunique(),
        len(forget),
        f"listed in {how}" if ids is not None else "drawn at random",
        retain.person_id.nunique(),
        len(retain),
    )
    return forget, retain


def fit_tokenizer(qa: pd.DataFrame) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on every text of the table (a classification table's
    tokenizer wraps each text in ``[BOS] ... [SEP]``, for the classifier to pool)."""
    tokenizer = train_word_tokenizer(corpus_texts(qa), classification="label" in qa.columns)
    log.info("tokenizer vocabulary: %d tokens", len(tokenizer))
    return tokenizer
