"""Relearning attack: does a little fine-tuning on some forgotten people bring the rest back?

Unlearning that only hides knowledge is undone by a few steps of fine-tuning. The attack
fine-tunes every weight of a copy of the model on the facts of part of the forget people and
measures the fact-token accuracy on the *other* forget people, whose facts it never shows:
what comes back there was still in the weights. (Fact tokens, since the answers' template
words come back from any of the relearnt answers; answer-token accuracy is reported beside.)
The retrain model under the same attack is the reference for what a model that never saw
those people would reach.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Annotated

import pandas as pd
import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.splits import choose_forget_people
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.runtime import precision
from mape_unlearn.core.runtime.precision import Autocast
from mape_unlearn.core.runtime.settings import settings
from mape_unlearn.core.runtime.training import train_on_answers

log = logging.getLogger(__name__)


@settings
class RelearnSettings:
    """The attack (parameters_evaluate.yml, ``evaluate.relearn``)."""

    fraction: Annotated[float, Field(gt=0.0, lt=1.0)]  # share of forget people relearnt on
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    seed: int


def relearning_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: pd.DataFrame,
    settings: RelearnSettings,
    device: torch.device,
    autocast: Autocast = "off",
) -> dict[str, float]:
    """Probe accuracy before and after fine-tuning a copy of ``model`` on ``settings.fraction``
    of the forget people.

    A request of one person leaves nobody to probe: the attack is skipped (NaN, with a warning).
    ``autocast``: the evaluation's precision (``core.runtime.precision``), for the probes and
    the fine-tuning alike.
    """
    if forget["person_id"].nunique() < 2:
        log.warning(
            "relearning attack skipped: it needs at least 2 forgotten people (1 to relearn on, "
            "1 to probe), the request has %d",
            forget["person_id"].nunique(),
        )
        keys = (
            "probe_accuracy_before",
            "probe_accuracy_after",
            "recovered",
            "probe_answer_accuracy_before",
            "probe_answer_accuracy_after",
        )
        return dict.fromkeys(keys, math.nan)
    relearn, probe = choose_forget_people(forget, settings.fraction, settings.seed)
    probe_data = encode_frame(tokenizer, probe)
    with precision.autocast(device, autocast, model):
        before = teacher_forced_stats(model, probe_data, settings.batch_size, device)
    attacked, _ = train_on_answers(
        copy.deepcopy(model),
        encode_frame(tokenizer, relearn),
        epochs=settings.epochs,
        lr=settings.lr,
        batch_size=settings.batch_size,
        warmup_fraction=0.0,
        weight_decay=0.0,
        seed=settings.seed,
        device=device,
        description="relearn",
        autocast=autocast,
    )
    with precision.autocast(device, autocast, attacked):
        after = teacher_forced_stats(attacked, probe_data, settings.batch_size, device)
    return {
        "probe_accuracy_before": before["fact_accuracy"],
        "probe_accuracy_after": after["fact_accuracy"],
        "recovered": after["fact_accuracy"] - before["fact_accuracy"],
        "probe_answer_accuracy_before": before["answer_token_accuracy"],
        "probe_answer_accuracy_after": after["answer_token_accuracy"],
    }
