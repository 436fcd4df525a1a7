"""Nodes of `successive`: several deletion requests served in a row, each from the model the
previous one left."""

from __future__ import annotations

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.splits import rows_not_forgotten
from mape_unlearn.core.method.importance import ImportanceSettings, MaskGradients
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.successive import Request, request_people, successive_unlearning
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.params import SuccessiveParams


def successive_requests(
    original_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    training_split: pd.DataFrame,
    forget_split: pd.DataFrame,
    holdout_split: pd.DataFrame,
    retain_gradients: dict[str, torch.Tensor],
    target: dict[str, float | None],
    search: SearchSettings,
    unlearn: UnlearnSettings,
    importance: ImportanceSettings,
    successive: SuccessiveParams,
) -> pd.DataFrame:
    """The forget request, then ``successive.requests - 1`` more of as many people each."""
    people = training_split["person_id"]
    requests, forgotten = [], set()
    for chosen in request_people(
        training_split, forget_split, successive.requests, successive.seed
    ):
        forgotten |= set(chosen)
        gone = training_split[people.isin(forgotten)]
        requests.append(
            Request(
                forget=encode_frame(tokenizer, training_split[people.isin(chosen)]),
                retain=encode_frame(tokenizer, training_split[~people.isin(forgotten)]),
                forgotten=encode_frame(tokenizer, gone),
                retain_rows_kept=torch.tensor(
                    rows_not_forgotten(training_split, retain_gradients["rows"].tolist(), gone)
                ),
            )
        )
    rows = successive_unlearning(
        original_model,
        requests,
        encode_frame(tokenizer, holdout_split),
        MaskGradients(retain_gradients["heads"], retain_gradients["filters"]),
        (search, unlearn),
        (target["forget_level"], torch.tensor(target.get("never_seen_nll", []))),
        importance.batch_size,
    )
    return pd.DataFrame(rows)
