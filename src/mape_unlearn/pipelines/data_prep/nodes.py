"""Nodes of `data_prep`: the embedded QA data, person-level splits and the tokenizer."""

from __future__ import annotations

import logging

import pandas as pd
from transformers import PreTrainedTokenizerFast

from mape_unlearn.core.people import generate_people_qa
from mape_unlearn.core.splits import choose_forget_people, hold_out_people
from mape_unlearn.core.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.params import ForgetParams, GeneratorParams, HoldoutParams

log = logging.getLogger(__name__)


def generate_qa(params: GeneratorParams) -> pd.DataFrame:
    """Generate the fictitious-people question-answer table."""
    qa = generate_people_qa(params.n_people, params.seed)
    log.info("generated %d questions about %d people", len(qa), params.n_people)
    return qa


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
    training: pd.DataFrame, params: ForgetParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the trained-on people into those to forget and those to retain."""
    forget, retain = choose_forget_people(training, params.fraction, params.seed, params.ids)
    log.info(
        "forgetting %d people (%d rows, %s); retaining %d people (%d rows)",
        forget.person_id.nunique(),
        len(forget),
        "listed in forget.ids" if params.ids is not None else "drawn at random",
        retain.person_id.nunique(),
        len(retain),
    )
    return forget, retain


def fit_tokenizer(qa: pd.DataFrame) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on every text of the table."""
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    log.info("tokenizer vocabulary: %d tokens", len(tokenizer))
    return tokenizer
