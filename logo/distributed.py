"""Per-rank state under DDP: every rank's sampler, buffer and RNG states go into one checkpoint.

Lightning builds a checkpoint on every rank and writes rank 0's copy. State that differs per rank
(batch samplers, synthetic buffers, random generators) is therefore gathered to every rank first,
as a list indexed by rank, and each rank takes its own entry back on resume.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """This process's global rank and the world size (0, 1 outside torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, as a list indexed by rank (a collective: every rank must call it)."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def own_entry(per_rank: list[Any], what: str) -> Any | None:
    """This rank's entry of a gathered list; None (with a warning) when the world size changed since."""
    rank, world = rank_and_world()
    if len(per_rank) == world:
        return per_rank[rank]
    warnings.warn(f"{what}: the checkpoint holds {len(per_rank)} rank(s), this run has {world}; "
                  "per-rank state restarts fresh (training continues, but not on the same curve)", stacklevel=2)
    return None
