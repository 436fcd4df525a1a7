"""Data parallelism over ``torch.distributed``: importance, unlearning and evaluation.

Work is split into contiguous shards, one per rank. Per-sample results travel by one gather that
hands every rank the full ``[n, ...]`` tensor in row order; sums (losses, gradients, counts) by
one all-reduce. Either way every rank returns what one process would. Without an initialised
process group every function here is the identity (rank 0 of 1): a plain run pays nothing and
needs no launcher.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of ``n`` items owned by ``rank``.

    The first ``n % world`` ranks get one item more; a rank may get none when ``n < world``.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(
            f"rank={rank!r} is not allowed with world={world!r}: expected 0 <= rank < world"
        )
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + int(rank < extra)


def local_rows(n: int) -> slice:
    """This rank's contiguous share of ``n`` rows (every rank holds all ``n``); all of them
    without a process group."""
    return slice(*shard_bounds(n, *rank_and_world()))


def init_from_env() -> bool:
    """Join the process group a launcher describes (``torchrun``, ``accelerate launch``).

    Launchers set ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` but leave the
    group to the program. Returns whether a group of more than one process is in use. On CUDA
    the group is NCCL and each rank takes GPU ``LOCAL_RANK`` (modulo the GPUs present) as its
    current device, so ``device: auto`` spreads ranks over the GPUs and collectives stay on
    them; on a CPU-only machine it is gloo.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group(backend=backend)
    atexit.register(_destroy)
    rank, world = rank_and_world()
    log.info("joined a %s process group: rank %d of %d", backend, rank, world)
    return world > 1


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _communication_device() -> torch.device:
    """Where collectives take their tensors: CUDA for a pure NCCL group, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Every rank's ``[n_r, ...]`` rows concatenated in rank order, on every rank.

    Shards may differ in length (or be empty): each is zero-padded to the longest for one
    ``all_gather``, then trimmed. The trailing dimensions must agree across ranks.
    """
    _, world = rank_and_world()
    if world == 1:
        return local
    device = _communication_device()
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([local.shape[0]], dtype=torch.long, device=device))
    sizes = [int(count) for count in counts]
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)]).to(
        local.device
    )


def gather_objects(local: list[Any]) -> list[Any]:
    """Every rank's list (of picklable things: decoded texts) concatenated in rank order."""
    _, world = rank_and_world()
    if world == 1:
        return local
    parts: list[list[Any]] = [[] for _ in range(world)]
    dist.all_gather_object(parts, local)
    return [item for part in parts for item in part]


def all_reduce_sum(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor summed elementwise over the ranks, on every rank, in a single collective.

    The tensors (on one device) travel as one flat buffer of their promoted dtype and each comes
    back in its own shape, dtype and device: one round trip per call however many tensors (a
    step's gradients, a set of counts). Without a process group: the tensors themselves.
    """
    _, world = rank_and_world()
    if world == 1:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(_communication_device())
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    parts = flat.split([t.numel() for t in tensors])
    return [part.view_as(t).to(t.device, t.dtype) for part, t in zip(parts, tensors, strict=True)]
