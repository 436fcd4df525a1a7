"""A compared method end to end, and re-searching the module mask during unlearning (a study
factor), on a real tiny model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.method.importance import ImportanceSettings, split_mask_gradients
from mape_unlearn.core.method.methods import (
    deletion_request,
    select_and_unlearn,
    unlearn_with_research,
)
from mape_unlearn.core.method.search import SearchSettings
from mape_unlearn.core.method.selection import Selector
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.runtime.models import build_model

BASE = Path(__file__).parents[2] / "conf" / "base"
MODULES = Selector(kind="modules")


def _params(stage: str, **overrides) -> dict:
    return {**yaml.safe_load((BASE / f"parameters_{stage}.yml").read_text())[stage], **overrides}


@pytest.fixture(scope="module")
def setting() -> tuple:
    qa = generate_people_qa(6, seed=0)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_positions": 64}, tokenizer, seed=0
    )
    forgotten = qa.person_id.isin(["p000", "p001"])
    forget, retain = qa[forgotten], qa[~forgotten]
    importance = ImportanceSettings(**_params("importance", batch_size=16, device="cpu"))

    def gradients_on(on: torch.nn.Module) -> tuple:
        gradients = (
            split_mask_gradients(on, tokenizer, forget, importance, None, "fact"),
            split_mask_gradients(on, tokenizer, qa, importance, None, "answer"),
            qa,
        )
        request = deletion_request(tokenizer, forget, retain, None, gradients)
        return request.forget_gradients, request.retain_gradients

    request = deletion_request(tokenizer, forget, retain)
    request = replace(
        request,
        **dict(zip(("forget_gradients", "retain_gradients"), gradients_on(model), strict=True)),
    )
    settings = (
        SearchSettings(**_params("mask_search", sparsity=0.5)),
        UnlearnSettings(
            **_params("unlearn", lr=1e-2, max_steps=7, eval_every=2, batch_size=8, device="cpu")
        ),
    )
    return model, request, settings, gradients_on


def test_without_research_it_is_the_single_search(setting):
    model, request, settings, gradients_on = setting
    once, trace, cost = unlearn_with_research(model, MODULES, request, settings, 0, gradients_on)
    expected, expected_trace, _ = select_and_unlearn(model, MODULES, request, *settings)
    assert trace == expected_trace and cost["steps"] == 7
    for a, b in zip(once.parameters(), expected.parameters(), strict=True):
        assert torch.equal(a, b)


def test_research_continues_the_steps_and_moves_the_mask(setting):
    model, request, settings, gradients_on = setting
    researched, trace, cost = unlearn_with_research(
        model, MODULES, request, settings, 3, gradients_on
    )
    assert [entry["step"] for entry in trace] == list(range(8))  # step 0: the original
    # checkpoints at 0, every 2 steps of each segment (1-3, 4-6, 7) and at each segment's end
    assert [e["step"] for e in trace if "forget_accuracy" in e] == [0, 2, 3, 5, 6, 7]
    assert cost["steps"] == 7 and not cost["reached_target"]
    once, _, _ = unlearn_with_research(model, MODULES, request, settings, 0, gradients_on)
    original, single = dict(model.named_parameters()), dict(once.named_parameters())
    frozen_once_moved = sum(
        int(((weights != original[name]) & (single[name] == original[name])).sum())
        for name, weights in researched.named_parameters()
    )
    assert frozen_once_moved > 0  # weights the first mask froze were unlearned after a re-search


def test_research_stops_at_the_target(setting):
    model, request, settings, gradients_on = setting
    at_target = replace(request, target_accuracy=1.0)
    _, trace, cost = unlearn_with_research(model, MODULES, at_target, settings, 3, gradients_on)
    # every accuracy is at or below 1: the original is there already, nothing is unlearnt
    assert cost["reached_target"] and cost["steps_to_matched_forgetting"] == 0
    assert trace[-1]["step"] == 0 and cost["steps"] == 0
