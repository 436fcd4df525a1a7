import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from mape_unlearn.core.data.encoding import IGNORE
from mape_unlearn.core.evaluation.answer_scores import answer_token_logprobs, answer_token_scores
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.method.losses import answer_nll
from tests.conftest import random_batch

CPU = torch.device("cpu")


@pytest.fixture
def gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=40, n_positions=32)
    return GPT2LMHeadModel(config).eval()


def test_logprob_sums_are_minus_the_answer_nll(gpt2):
    batch = random_batch(6)
    logprobs = answer_token_logprobs(gpt2, batch, batch_size=4, device=CPU)
    with torch.no_grad():
        nll, counts = answer_nll(gpt2, batch)
    assert len(logprobs) == len(batch)
    assert [len(lp) for lp in logprobs] == counts.tolist()
    assert [len(lp) for lp in logprobs] == (batch.labels != IGNORE).sum(dim=1).tolist()
    torch.testing.assert_close(torch.stack([lp.sum() for lp in logprobs]), -nll, atol=1e-5, rtol=0)
    assert all(bool((lp < 0).all()) for lp in logprobs)


def test_other_architectures_agree_with_answer_nll(model):
    batch = random_batch(5, seed=3)
    logprobs = answer_token_logprobs(model, batch, batch_size=2, device=CPU)
    with torch.no_grad():
        nll, _ = answer_nll(model, batch)
    torch.testing.assert_close(torch.stack([lp.sum() for lp in logprobs]), -nll, atol=1e-5, rtol=0)


def test_batch_size_does_not_change_results(gpt2):
    batch = random_batch(7, seed=1)
    one = answer_token_scores(gpt2, batch, batch_size=1, device=CPU)
    many = answer_token_scores(gpt2, batch, batch_size=5, device=CPU)
    for a, b in zip(one, many, strict=True):
        for name in ("logprob", "mean", "std"):
            torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)


def test_scores_share_logprobs_with_answer_token_logprobs(gpt2):
    batch = random_batch(4, seed=2)
    scores = answer_token_scores(gpt2, batch, batch_size=3, device=CPU)
    logprobs = answer_token_logprobs(gpt2, batch, batch_size=3, device=CPU)
    for row, lp in zip(scores, logprobs, strict=True):
        assert set(row) == {"logprob", "hit", "fact", "mean", "std"}
        assert row["mean"].shape == row["std"].shape == lp.shape
        torch.testing.assert_close(row["logprob"], lp)


def test_vocab_mean_and_std_match_a_direct_computation(gpt2):
    batch = random_batch(3, seed=4)
    sample, token = 1, 2  # third answer token of the second sample
    row = answer_token_scores(gpt2, batch, batch_size=3, device=CPU)[sample]

    prompt = int(batch.prompt_lengths()[sample])
    length = int(batch.attention_mask[sample].sum())
    ids = batch.input_ids[sample : sample + 1, :length]
    with torch.no_grad():
        logits = gpt2(input_ids=ids).logits[0, prompt - 1 + token].double()
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    mean = float((p * logp).sum())
    std = float(((p * logp**2).sum() - mean**2).sqrt())  # the raw-moment form, in float64

    assert float(row["logprob"][token]) == pytest.approx(float(logp[ids[0, prompt + token]]))
    assert float(row["mean"][token]) == pytest.approx(mean, abs=1e-5)
    assert float(row["std"][token]) == pytest.approx(std, abs=1e-5)
    assert std > 0


def test_teacher_forced_stats_add_up_each_token_and_each_whole_answer(gpt2):
    """From the one scoring pass: NLL and argmax accuracy per token, exact match per sample,
    over the answer tokens and over the fact tokens, as a direct count over the logits."""
    batch = random_batch(7, seed=5)
    stats = teacher_forced_stats(gpt2, batch, batch_size=3, device=CPU)
    with torch.no_grad():
        logits = gpt2(**batch.model_inputs()).logits[:, :-1]
    for targets, prefix in ((batch.labels[:, 1:], "answer"), (batch.fact_labels[:, 1:], "fact")):
        keep = targets != IGNORE
        nll = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
        hits = (logits.argmax(-1) == targets) | ~keep
        assert stats[f"{prefix}_nll"] == pytest.approx(nll.item(), rel=1e-5)
        accuracy = "answer_token_accuracy" if prefix == "answer" else "fact_accuracy"
        assert stats[accuracy] == pytest.approx(hits[keep].float().mean().item())
        exact = "exact_match" if prefix == "answer" else "fact_exact_match"
        assert stats[exact] == pytest.approx(hits.all(dim=1).float().mean().item())
