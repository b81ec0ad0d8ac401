"""Multi-process training: ``torchrun --nproc-per-node N -m igc train ...``.

:func:`setup` reads the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins the process group: NCCL on
CUDA, gloo on CPU. Without them (or with ``WORLD_SIZE=1``) everything here is a no-op, so the
same code runs single-process. Rank 0 is the only one that writes files or prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from igc.errors import IGCError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
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
    except ValueError:
        raise IGCError(f"environment variable {name}={value!r} is not an integer") from None


def setup(device_type: str) -> DistInfo:
    """Join the process group if launched by torchrun (``device_type`` ``cpu``/``cuda``)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        if local >= torch.cuda.device_count():
            raise IGCError(f"local rank {local} has no GPU ({torch.cuda.device_count()} "
                           "visible); start at most that many processes per node")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise IGCError(f"WORLD_SIZE={world} but {', '.join(missing)} unset; launch with "
                           "torchrun (it sets them)")
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, local_world, backend)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (in place; returned for chaining)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; for small objects and checkpoints)."""
    if not info.enabled:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(error: str | None, info: DistInfo) -> None:
    """Raise rank 0's error message (if any) on every rank, so all stop together."""
    error = broadcast(error, info)
    if error:
        raise IGCError(error)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
