"""Data parallelism: 2 CPU processes on gloo return what one process returns.

Importance, unlearning (weights and trace) and evaluation (aggregates and per-sample metrics).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import PreTrainedTokenizerBase

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.evaluation.metrics import teacher_forced_stats
from mape_unlearn.core.evaluation.protocol import evaluate_split
from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.method.unlearning import masked_unlearn
from mape_unlearn.core.runtime.distributed import (
    all_reduce_sum,
    gather_rows,
    init_from_env,
    local_rows,
    rank_and_world,
    shard_bounds,
)
from mape_unlearn.core.runtime.models import build_model
from mape_unlearn.core.runtime.training import train_on_answers
from tests.conftest import random_batch, tiny_model
from tests.core.test_unlearning import _key_bias, _selection, _settings

CPU = torch.device("cpu")
WORLD = 2
# (samples, batch size, storage dtype): uneven shards (4 + 3 rows), a rank with no batch at all
# (3 samples in one batch), and float16 storage through the gather
CASES = [(7, 2, torch.float32), (7, 4, torch.float32), (3, 4, torch.float32), (7, 2, torch.float16)]
# (rule, batch size, compact path, KL weight) on 6 forget and 8 retain rows: even shards; batches
# of 5 then 1, which leaves rank 1 no forget row every other step; the dense path; `so`'s Fisher
# over 2 and over 3 retain batches; npo with the retain KL
UNLEARN_CASES = [
    ("gd", 4, True, 0.0),
    ("gd", 5, True, 0.0),
    ("gd", 5, False, 0.0),
    ("so", 5, True, 0.0),
    ("so", 3, True, 0.0),
    ("npo", 5, True, 1.0),
]
# (rows, batch size, truth-ratio columns): uneven shards (4 + 3 rows), rank 1 with no row, and a
# user's split without paraphrased or perturbed answers
EVALUATE_CASES = [(7, 3, True), (1, 2, True), (7, 3, False)]
EvaluationInputs = tuple[pd.DataFrame, PreTrainedTokenizerBase, torch.nn.Module]


@pytest.mark.parametrize("n, world", [(7, 2), (12, 3), (2, 4), (0, 2), (5, 1)])
def test_shards_are_contiguous_cover_everything_and_differ_by_at_most_one(n: int, world: int):
    bounds = [shard_bounds(n, rank, world) for rank in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:], strict=False))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_bounds_names_a_bad_rank():
    with pytest.raises(ValueError, match="rank=2 is not allowed with world=2"):
        shard_bounds(7, 2, 2)


def test_without_a_process_group_everything_is_single_process(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_and_world() == (0, 1)
    assert init_from_env() is False and not dist.is_initialized()
    rows = torch.randn(3, 2)
    assert gather_rows(rows) is rows
    assert all_reduce_sum([rows])[0] is rows
    assert local_rows(5) == slice(0, 5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, port: int) -> None:
    """Join the group as a rank that torchrun launched: the group comes from the environment."""
    torch.set_num_threads(1)  # two processes share the test machine's cores
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    assert init_from_env() is True
    assert rank_and_world() == (rank, WORLD)


@pytest.fixture(scope="module")
def spawned(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], EvaluationInputs]:
    """Each rank's importance, unlearning and evaluation results, from one launch of the two
    ranks (each launch starts and imports two processes anew), and the evaluated inputs."""
    out = tmp_path_factory.mktemp("ranks")
    inputs = _evaluation_inputs()
    torch.save(inputs, out / "inputs.pt")  # every rank evaluates this very model
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]
    return ranks, inputs


def _worker(rank: int, port: int, out: Path) -> None:
    _join(rank, port)
    inputs = torch.load(out / "inputs.pt", weights_only=False)
    results = {
        "importance": _importance_results(rank),
        "unlearn": {case: _unlearned(*case) for case in UNLEARN_CASES},
        "evaluate": {case: _evaluated(inputs, case) for case in EVALUATE_CASES},
    }
    torch.save(results, out / f"rank{rank}.pt")


def _importance_results(rank: int) -> dict:
    model = tiny_model("gpt2")
    results = {}
    for n, batch_size, dtype in CASES:
        grads = per_sample_mask_gradients(
            model, random_batch(n=n), batch_size, CPU, dtype=dtype, description=f"rank {rank}"
        )
        results[(n, batch_size, str(dtype))] = grads.as_dict()
    # rows of different lengths per rank (2 and 3), gathered in rank order
    results["ragged"] = gather_rows(torch.full((2 + rank, 3), float(rank)))
    # sums of tensors of different shapes and dtypes, in one collective
    results["sums"] = all_reduce_sum([torch.full((2, 2), rank + 1.0), torch.tensor(rank + 1)])
    return results


def test_two_gloo_ranks_return_the_single_process_gradients(spawned):
    model = tiny_model("gpt2")
    for results in (ranks["importance"] for ranks in spawned[0]):
        for n, batch_size, dtype in CASES:
            single = per_sample_mask_gradients(model, random_batch(n=n), batch_size, CPU, dtype)
            gathered = results[(n, batch_size, str(dtype))]
            assert gathered["heads"].dtype == dtype and gathered["heads"].shape == (n, 2, 4)
            for name, expected in single.as_dict().items():
                torch.testing.assert_close(gathered[name], expected, atol=1e-6, rtol=0)
        ragged = results["ragged"]
        assert ragged[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
        matrix, count = results["sums"]
        assert matrix.tolist() == [[3.0, 3.0], [3.0, 3.0]] and count.dtype == torch.long
        assert int(count) == 3


def _unlearned(
    rule: str, batch_size: int, compact: bool, kl_weight: float
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    model = tiny_model("gpt2")
    return masked_unlearn(
        model,
        random_batch(6, seed=1),
        random_batch(8, seed=2),
        module_weight_masks(model, *_selection(model)),
        _settings(rule=rule, batch_size=batch_size, kl_weight=kl_weight),
        target_forget_accuracy=None,
        device=CPU,
        compact=compact,
    )


def test_two_gloo_ranks_unlearn_like_one_process(spawned):
    ranks = [results["unlearn"] for results in spawned[0]]

    original = tiny_model("gpt2")
    masks = module_weight_masks(original, *_selection(original))
    for case in UNLEARN_CASES:
        single, single_trace = _unlearned(*case)
        for results in ranks:
            model, trace = results[case]
            weights = model.state_dict()
            assert [e["step"] for e in trace] == [0, 1, 2, 3, 4, 5]
            for entry, expected in zip(trace, single_trace, strict=True):
                assert entry == pytest.approx(expected, rel=1e-5), case
            for name, expected in single.named_parameters():
                frozen = ~masks.get(name, torch.zeros_like(expected, dtype=torch.bool))
                assert torch.equal(weights[name][frozen], expected[frozen]), (case, name)
                keep = torch.ones_like(expected, dtype=torch.bool)
                keep[_key_bias(original, name)] = False  # no effect on outputs: see there
                torch.testing.assert_close(
                    weights[name][keep], expected[keep].detach(), rtol=1e-5, atol=1e-6
                )


def _evaluation_inputs() -> EvaluationInputs:
    """A split, its tokenizer and a tiny GPT-2 that learnt 4 of its answers, so that exact
    match and ROUGE vary from row to row."""
    qa = generate_people_qa(1, seed=1)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    model = build_model(
        "gpt2", {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}, tokenizer, seed=0
    )
    learnt = encode_frame(tokenizer, qa.iloc[:4])
    model, _ = train_on_answers(model, learnt, 100, 1e-2, 4, 0.0, 0.0, 0, CPU)
    return qa, tokenizer, model


def _evaluated(inputs: EvaluationInputs, case: tuple[int, int, bool]) -> dict:
    """The evaluation and the teacher-forced statistics of the first ``rows`` rows."""
    qa, tokenizer, model = inputs
    rows, batch_size, truth = case
    frame = qa.iloc[:rows] if truth else qa.iloc[:rows][["person_id", "question", "answer"]]
    summary, samples = evaluate_split(model, tokenizer, frame, "forget", batch_size, CPU)
    # exact match as the trace measures it (evaluate_split reports the greedy one)
    stats = teacher_forced_stats(model, encode_frame(tokenizer, frame), batch_size, CPU)
    return {"summary": summary, "samples": samples, "stats": stats}


def test_two_gloo_ranks_evaluate_like_one_process(spawned):
    ranks, inputs = [results["evaluate"] for results in spawned[0]], spawned[1]
    for case in EVALUATE_CASES:
        single = _evaluated(inputs, case)
        assert single["samples"].exact_match.any() or case[0] == 1  # greedy answers vary
        for results in ranks:
            gathered = results[case]
            for key in ("summary", "stats"):
                assert gathered[key] == pytest.approx(single[key], rel=1e-5, nan_ok=True), case
            pd.testing.assert_frame_equal(gathered["samples"], single["samples"], rtol=1e-5)
