"""torch.distributed helpers for sharding experiment runs over processes, GPUs and nodes.

A run is distributed when the environment says so (`WORLD_SIZE` > 1, as set by `torchrun`); then every
process takes the items `rank, rank + world_size, ...` of a fixed work list, writes only its own files,
and rank 0 writes summaries after a barrier. Backend: NCCL on CUDA devices, gloo otherwise.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


def distributed_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment (0, 1, 0 when absent)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    return rank, world_size, local_rank


def init_distributed(device: str = "auto", timeout_minutes: float = 60.0) -> DistContext:
    """Join the process group described by the environment, if any.

    `device` is the config's device string: CUDA devices use NCCL (and `cuda:LOCAL_RANK`), others gloo.
    """
    rank, world_size, local_rank = distributed_env()
    if world_size == 1:
        return DistContext()
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, initialized_here=False)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(minutes=timeout_minutes),
    )
    return DistContext(rank, world_size, local_rank, initialized_here=True)


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a single-process run)."""
    if ctx.is_distributed:
        dist.barrier()


def all_gather_objects(ctx: DistContext, obj: T) -> list[T]:
    """Every rank's `obj`, in rank order (picklable objects)."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's share of `items`: positions rank, rank + world_size, ... (round robin)."""
    return list(items[ctx.rank :: ctx.world_size])


def finalize(ctx: DistContext) -> None:
    """Leave the process group if this module created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
