"""Evaluation of data without paraphrased or perturbed answers: truth-ratio metrics are NaN."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.evaluation.protocol import compare_to_retrain, evaluate_split
from tests.conftest import save_user_model


def test_metrics_without_paraphrased_or_perturbed_answers(tmp_path: Path) -> None:
    qa = generate_people_qa(1, seed=0)[["person_id", "question", "answer"]]
    path = save_user_model(tmp_path / "model", [*qa.question, *qa.answer])
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    summary, samples = evaluate_split(model, tokenizer, qa, "forget", 8, torch.device("cpu"))

    assert math.isnan(summary["truth_ratio"])
    assert samples.truth_ratio.isna().all()
    assert 0 <= summary["rouge_l_recall"] <= 1
    # the same rows as every split: enough for the comparison across models
    summaries = dict.fromkeys(("forget", "retain", "holdout"), summary)
    both = pd.concat([samples, samples.assign(split="holdout")], ignore_index=True)
    comparison = compare_to_retrain(
        {"retrain": summaries, "unlearned": summaries}, {"retrain": both, "unlearned": both}
    )["unlearned"]
    assert math.isnan(comparison["forget_quality"])
    assert math.isnan(comparison["model_utility"])
    assert comparison["mia_auc_min_k"] == 0.5  # the same samples as members and non-members
