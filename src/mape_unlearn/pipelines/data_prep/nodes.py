"""Nodes of `data_prep`: the embedded QA data, person-level splits and the tokenizer."""

from __future__ import annotations

import logging

import pandas as pd
from transformers import PreTrainedTokenizerFast

from mape_unlearn.core.people import generate_people_qa
from mape_unlearn.core.splits import split_by_person
from mape_unlearn.core.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.params import DataPrepParams

log = logging.getLogger(__name__)


def generate_qa(params: DataPrepParams) -> pd.DataFrame:
    """Generate the fictitious-people question-answer table."""
    qa = generate_people_qa(params.n_people, params.seed)
    log.info("generated %d questions about %d people", len(qa), params.n_people)
    return qa


def split_people(
    qa: pd.DataFrame, params: DataPrepParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split by person into forget, retain and holdout, plus the trained-on set (forget+retain)."""
    splits = split_by_person(
        qa, params.forget_fraction, params.holdout_fraction, params.seed, params.forget_ids
    )
    training = pd.concat([splits.forget, splits.retain], ignore_index=True)
    for name, split in (("forget", splits.forget), ("retain", splits.retain)):
        log.info("%s split: %d people, %d rows", name, split.person_id.nunique(), len(split))
    return training, splits.forget, splits.retain, splits.holdout


def fit_tokenizer(qa: pd.DataFrame) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on every text of the table."""
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    log.info("tokenizer vocabulary: %d tokens", len(tokenizer))
    return tokenizer
