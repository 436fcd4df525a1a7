"""Nodes of `data_prep`: the QA data (generated or the user's), person-level splits and the
tokenizer."""

from __future__ import annotations

import logging
from typing import Any, get_args

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from mape_unlearn.core.data.facts import with_facts
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.people_labels import label_people
from mape_unlearn.core.data.qa_data import (
    FACT,
    OPTIONAL,
    REQUIRED,
    requested_ids,
    to_label_table,
    to_qa_table,
)
from mape_unlearn.core.data.splits import (
    ID_LIST,
    check_pretrained_holdout,
    check_retain_size,
    choose_forget_people,
    hold_out_people,
    listed_ids,
)
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.evaluation.protocol import greedy_statements
from mape_unlearn.core.runtime.device import resolve_device
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


def generate_qa(task: Task, params: GeneratorParams) -> tuple[pd.DataFrame, dict[str, int]]:
    """Generate the fictitious-people table: questions and answers with each answer's fact (the
    attribute value), or (``task: classification``) their fact sentences labelled with a class
    drawn per person; with ``distinct_values`` the people share no attribute value (up to 30
    people). Also how many rows each fact rule set."""
    qa = generate_people_qa(params.n_people, params.seed, params.distinct_values, params.answers)
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
        return qa, {}
    log.info(
        "generated %d questions about %d people (%s values, %s answers)",
        len(qa),
        params.n_people,
        values,
        params.answers,
    )
    return _with_facts(qa)


def _with_facts(qa: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The table with its ``fact`` column, and the rows each rule set (logged, tracked)."""
    qa, rules = with_facts(qa)
    log.info(
        "fact tokens: %s",
        ", ".join(f"{n} rows by the {rule!r} rule" for rule, n in rules.items() if n),
    )
    return qa, rules


def read_qa(
    table: pd.DataFrame, params: QASourceParams, task: Task
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The user's table in the project's column names, checked: question-answer pairs with
    each answer's fact (mapped or derived), or (``task: classification``) texts with class ids.
    Also how many rows each fact rule set."""
    if _classification(task):
        qa, names = to_label_table(table, params.label_columns.model_dump())
        log.info(
            "read %d labelled texts about %d people in %d classes (class id: label %s)",
            len(qa),
            qa.person_id.nunique(),
            len(names),
            dict(enumerate(names)),
        )
        return qa, {}
    qa = to_qa_table(table, params.columns.model_dump(), params.rows_per_person)
    missing = [name for name in OPTIONAL if name not in qa]
    log.info(
        "read %d questions about %d people%s",
        len(qa),
        qa.person_id.nunique(),
        f"; without {missing}: truth ratio and forget quality will be NaN" if missing else "",
    )
    return _with_facts(qa)


def read_forget_request(
    request: pd.DataFrame, params: QASourceParams, qa: pd.DataFrame
) -> list[str]:
    """The ids of the people (or documents) listed in the user's deletion-request file: a
    table with the id column, or a list of ids (.txt, one-column CSV) with or without a
    header line (a first line that is not an id of ``qa`` is a header)."""
    if list(request.columns) != [ID_LIST]:
        return requested_ids(request, params.columns.person_id)
    ids, header = listed_ids(request[ID_LIST].tolist(), set(qa.person_id.astype(str)))
    if header is not None:
        log.info("forget_request: first line %r read as a header (not an id of the data)", header)
    return ids


def hold_out(
    qa: pd.DataFrame,
    params: HoldoutParams,
    original: str = "trained",
    requested: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by person into the trained-on set and the never-trained-on holdout, which never
    draws a person of the deletion request (``requested``). With the user's own model
    (``train.original: pretrained``) a drawn holdout would be people it was trained on, so
    only ``holdout.ids`` or an empty holdout are allowed."""
    check_pretrained_holdout(params.fraction, params.ids, original)
    training, holdout = hold_out_people(
        qa, params.fraction, params.seed, ids=params.ids, requested=requested or ()
    )
    if holdout.empty:
        log.warning(
            "the holdout is empty (data_prep.holdout.fraction=0, no holdout.ids): the holdout "
            "metrics and the membership-inference AUCs will be NaN; list people the model "
            "never saw in data_prep.holdout.ids to have them"
        )
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


def import_base_model(
    checkpoint: dict[str, Any],
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The pretrained base model and its tokenizer, out of a file that is slow to read (GGUF,
    dequantised on every load) into ``save_pretrained`` directories that every later stage
    reads fast."""
    model, tokenizer = checkpoint["model"], checkpoint["tokenizer"]
    log.info(
        "imported the base model: %s, %.1f M parameters, vocabulary of %d",
        type(model).__name__,
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(tokenizer),
    )
    return model, tokenizer


def known_world_facts(
    world_facts: pd.DataFrame,
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    device: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The world-knowledge questions whose fact the base model's greedy answer states, and the
    check of every question (its answer, kept or not).

    Utility on world knowledge measures what unlearning destroys, so it is measured only on
    what the model knew before it was fine-tuned or unlearned. It reads the evaluation's batch
    size and device only, so choosing other compared methods does not ask again.
    """
    columns = {name: name for name in (*REQUIRED, *OPTIONAL, FACT)}
    table = to_qa_table(world_facts, columns)
    answers, known = greedy_statements(
        base_model, tokenizer, table, batch_size, resolve_device(device)
    )
    check = table[["person_id", "question", "fact"]].assign(base_answer=answers, known=known)
    if not known.any():
        raise ValueError(
            "the base model states none of the world facts' answers (data_prep.world_facts): "
            "world-knowledge utility cannot be measured; see world_facts_check for its answers"
        )
    log.info(
        "world facts: the base model answers %d of %d questions correctly; kept those",
        int(known.sum()),
        len(table),
    )
    return table[known].reset_index(drop=True), check
