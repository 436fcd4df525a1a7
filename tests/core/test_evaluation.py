import numpy as np
import pandas as pd
import pytest
import torch

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.evaluation.protocol import (
    compare_to_retrain,
    degenerate_metrics,
    evaluate_split,
    membership_auc,
)
from mape_unlearn.core.runtime.models import build_model

CPU = torch.device("cpu")


def _samples(forget_ratios, holdout_scores, forget_scores) -> pd.DataFrame:
    n_f, n_h = len(forget_scores), len(holdout_scores)
    frame = pd.DataFrame(
        {
            "split": ["forget"] * n_f + ["holdout"] * n_h,
            "truth_ratio": list(forget_ratios) + [1.0] * n_h,
        }
    )
    for attack in ("loss", "zlib", "min_k", "min_k_plus_plus"):
        frame[f"mia_{attack}"] = list(forget_scores) + list(holdout_scores)
    return frame


def _summary(utility: float) -> dict:
    metrics = {"answer_probability": utility, "rouge_l_recall": utility, "truth_ratio": utility}
    return {"retain": metrics}


def test_comparison_of_a_model_with_itself_is_ideal_and_memorisation_is_caught():
    rng = np.random.default_rng(0)
    retrain = _samples(rng.uniform(0.5, 1.5, 40), rng.normal(0, 1, 30), rng.normal(0, 1, 40))
    memorised = _samples(np.full(40, 0.01), rng.normal(0, 1, 30), rng.normal(10, 1, 40))
    result = compare_to_retrain(
        {"retrain": _summary(0.8), "original": _summary(0.0)},
        {"retrain": retrain, "original": memorised},
    )
    assert result["retrain"]["forget_quality"] == pytest.approx(1.0)
    assert result["retrain"]["privleak_loss"] == pytest.approx(0.0)
    assert result["original"]["forget_quality"] < 1e-6
    assert result["original"]["mia_auc_loss"] == pytest.approx(1.0)
    assert result["original"]["mia_gap_loss"] == pytest.approx(0.5)
    assert result["original"]["model_utility"] == 0.0
    assert result["retrain"]["model_utility"] == pytest.approx(0.8)


def test_world_knowledge_joins_model_utility_as_tofu_world_facts():
    """World utility is the harmonic mean of the world split's option probability, ROUGE-L and
    truth ratio; model utility then covers the retain set's three and the world's three."""
    rng = np.random.default_rng(0)
    frame = _samples(rng.uniform(0.5, 1.5, 10), rng.normal(0, 1, 5), rng.normal(0, 1, 10))
    world = {"option_probability": 0.5, "rouge_l_recall": 1.0, "truth_ratio": 0.25}
    result = compare_to_retrain(
        {"retrain": {**_summary(0.8), "world": world}, "plain": _summary(0.8)},
        {"retrain": frame, "plain": frame},
    )
    assert result["retrain"]["world_utility"] == pytest.approx(3 / (2 + 1 + 4))
    assert result["retrain"]["model_utility"] == pytest.approx(6 / (3 / 0.8 + 2 + 1 + 4))
    assert np.isnan(result["plain"]["world_utility"])
    assert result["plain"]["model_utility"] == pytest.approx(0.8)


def test_membership_auc_needs_both_splits():
    frame = _samples([1.0], [0.0], [1.0])
    assert membership_auc(frame)["min_k"] == 1.0
    assert membership_auc(frame[frame.split == "forget"]) == {}


def test_evaluate_split_on_a_real_tiny_model():
    qa = generate_people_qa(3, seed=1)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}, tokenizer, seed=0
    )
    summary, samples = evaluate_split(model, tokenizer, qa, "forget", batch_size=5, device=CPU)
    assert len(samples) == len(qa)
    assert set(samples.split) == {"forget"}
    assert 0 < summary["answer_probability"] < 1
    assert summary["exact_match"] == 0.0  # an untrained model answers nothing exactly
    assert (samples.truth_ratio > 0).all() and np.isfinite(samples.truth_ratio).all()
    assert 0.0 <= summary["rouge_l_recall"] <= 1.0


def test_fact_metrics_and_greedy_text_per_sample():
    """Fact accuracy scores only the fact tokens; the greedy answer's text is kept, and fact
    recall says whether it states the fact."""
    qa = generate_people_qa(3, seed=1)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}, tokenizer, seed=0
    )
    summary, samples = evaluate_split(model, tokenizer, qa, "forget", batch_size=5, device=CPU)
    assert 0.0 <= summary["fact_accuracy"] <= 1.0
    assert samples.generated_answer.map(type).eq(str).all()
    recalled = [
        f" {fact} " in f" {text} "
        for fact, text in zip(qa.fact, samples.generated_answer, strict=True)
    ]
    assert samples.fact_recall.tolist() == recalled
    assert summary["fact_recall"] == np.mean(recalled)


def test_a_model_that_says_the_facts_has_full_fact_recall():
    from mape_unlearn.core.data.encoding import encode_frame
    from mape_unlearn.core.runtime.training import train_on_answers

    qa = generate_people_qa(2, seed=3)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64}, tokenizer, seed=0
    )
    model, _ = train_on_answers(
        model,
        encode_frame(tokenizer, qa),
        epochs=150,
        lr=1e-2,
        batch_size=16,
        warmup_fraction=0.0,
        weight_decay=0.0,
        seed=0,
        device=CPU,
    )
    summary, samples = evaluate_split(model, tokenizer, qa, "forget", batch_size=8, device=CPU)
    assert summary["exact_match"] >= 0.5  # it learnt most answers word for word
    exact = samples.exact_match.to_numpy()
    assert (samples.generated_answer[exact] == qa.answer[exact]).all()
    assert samples.fact_recall[exact].all()  # an exact answer states its fact
    assert summary["fact_recall"] >= summary["exact_match"]
    assert summary["fact_exact_match"] >= summary["exact_match"]


def test_degenerate_metrics_are_explained():
    nan = float("nan")
    healthy = {
        "original": {
            "retain": {"truth_ratio_zero_share": 0.1},
            "comparison": {"model_utility": 0.7},
        },
        "retrain": {"retain": {}, "comparison": {"model_utility": 0.6}},
    }
    assert degenerate_metrics(healthy) == []
    flat = {
        "original": {
            "retain": {"truth_ratio_zero_share": 0.9, "truth_ratio_vs_answer": 0.4},
            "comparison": {"model_utility": 0.0, "forget_quality": nan},
        },
        "unlearned": {"retain": {}, "comparison": {"model_utility": nan, "forget_quality": nan}},
    }
    notes = degenerate_metrics(flat)
    assert len(notes) == 3
    assert "truth-ratio score is 0 on 90% of rows" in notes[0] and "0.4" in notes[0]
    assert "model utility is 0 or NaN for every model" in notes[1]
    assert "train.retrain: false" in notes[2]
