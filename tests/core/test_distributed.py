"""Data-parallel importance: 2 CPU processes on gloo return exactly what one process returns."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mape_unlearn.core.distributed import gather_rows, init_from_env, rank_and_world, shard_bounds
from mape_unlearn.core.importance import per_sample_mask_gradients
from tests.conftest import random_batch, tiny_model

CPU = torch.device("cpu")
WORLD = 2
# (samples, batch size, storage dtype): uneven shards (4 + 3 rows), a rank with no batch at all
# (3 samples in one batch), and float16 storage through the gather
CASES = [(7, 2, torch.float32), (7, 4, torch.float32), (3, 4, torch.float32), (7, 2, torch.float16)]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: Path) -> None:
    """One rank, launched like torchrun would: the group comes from the environment."""
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
    model = tiny_model("gpt2")
    results = {}
    for n, batch_size, dtype in CASES:
        grads = per_sample_mask_gradients(
            model, random_batch(n=n), batch_size, CPU, dtype=dtype, description=f"rank {rank}"
        )
        results[(n, batch_size, str(dtype))] = grads.as_dict()
    # rows of different lengths per rank (2 and 3), gathered in rank order
    results["ragged"] = gather_rows(torch.full((2 + rank, 3), float(rank)))
    torch.save(results, out / f"rank{rank}.pt")


def test_two_gloo_ranks_return_the_single_process_gradients(tmp_path: Path):
    mp.spawn(_worker, args=(_free_port(), tmp_path), nprocs=WORLD, join=True)

    model = tiny_model("gpt2")
    for rank in range(WORLD):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for n, batch_size, dtype in CASES:
            single = per_sample_mask_gradients(model, random_batch(n=n), batch_size, CPU, dtype)
            gathered = results[(n, batch_size, str(dtype))]
            assert gathered["heads"].dtype == dtype and gathered["heads"].shape == (n, 2, 4)
            for name, expected in single.as_dict().items():
                torch.testing.assert_close(gathered[name], expected, atol=1e-6, rtol=0)
        ragged = results["ragged"]
        assert ragged[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
