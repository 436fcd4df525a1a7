import math

import torch

from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.evaluation.relearning import RelearnSettings, relearning_attack
from mape_unlearn.core.runtime.models import build_model

CPU = torch.device("cpu")


def test_attack_fine_tunes_a_copy_and_reports_the_probe_people_only():
    qa = generate_people_qa(4, seed=2)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}, tokenizer, seed=0
    )
    before = {n: p.clone() for n, p in model.named_parameters()}
    result = relearning_attack(
        model, tokenizer, qa, RelearnSettings(0.5, epochs=3, lr=1e-2, batch_size=4, seed=0), CPU
    )
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # copy attacked
    assert set(result) == {
        "probe_accuracy_before",
        "probe_accuracy_after",
        "recovered",
        "probe_answer_accuracy_before",
        "probe_answer_accuracy_after",
    }
    assert result["recovered"] == result["probe_accuracy_after"] - result["probe_accuracy_before"]
    # the shared sentence templates are learnt from the relearn people: answer accuracy on the
    # probe people rises, far more than their facts (which they never showed) come back
    template = result["probe_answer_accuracy_after"] - result["probe_answer_accuracy_before"]
    assert template > 0.05 and template > 2 * result["recovered"]


def test_a_request_of_one_person_skips_the_attack(caplog):
    qa = generate_people_qa(3, seed=2)
    one = qa[qa.person_id == qa.person_id.iloc[0]]
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}, tokenizer, seed=0
    )
    result = relearning_attack(
        model, tokenizer, one, RelearnSettings(0.5, epochs=1, lr=1e-2, batch_size=4, seed=0), CPU
    )
    assert all(math.isnan(value) for value in result.values())
    assert "at least 2 forgotten people" in caplog.text
