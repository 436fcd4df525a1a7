"""The `train` pipeline's shape, and the retrain reference of a user's model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.params import TrainParams
from mape_unlearn.pipelines.train import create_pipeline
from mape_unlearn.pipelines.train.nodes import train_like
from tests.conftest import save_user_model


def test_wiring() -> None:
    assert {node.name for node in create_pipeline().nodes} == {"original.fit", "retrain.fit"}
    users = create_pipeline(original="pretrained")
    assert {node.name for node in users.nodes} == {"retrain.fit"}  # the original is not trained
    assert users.inputs() == {"retain_split", "tokenizer", "original_model", "params:train"}
    assert users.all_outputs() == {"retrain_model", "retrain_training_history"}


def test_the_retrain_reference_of_a_users_model_is_fresh_and_alike(tmp_path: Path) -> None:
    qa = generate_people_qa(2, seed=0)
    path = save_user_model(tmp_path / "model", [*qa.question, *qa.answer])
    original = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    params = TrainParams(
        original="pretrained",
        retrain=True,
        base="directory",
        model_type="ignored",
        architecture={},
        epochs=2,
        lr=1e-3,
        batch_size=8,
        warmup_fraction=0.0,
        weight_decay=0.0,
        seed=0,
        device="cpu",
        autocast="auto",
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    retrain, history = train_like(qa, tokenizer, original, params)
    assert type(retrain) is type(original)
    assert retrain.config.to_dict() == original.config.to_dict()
    assert len(history["answer_nll_per_epoch"]) == 2
    before = dict(original.named_parameters())
    assert all(not torch.equal(p, before[name]) for name, p in retrain.named_parameters())
