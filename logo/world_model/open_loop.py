"""Open-loop error: how fast a world model's next-state error grows when it is fed its own predictions.

From fixed held-out start transitions, the model steps k times along the dataset's own actions; the
error is the squared distance of its k-th next state to the dataset's, in standardised units.
:class:`~logo.callbacks.diagnostics.WorldModelDiagnostics` logs it as ``val/open_loop_mse_k{k}`` every
validation epoch; notebooks and benchmarks call :func:`open_loop_errors` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from logo.data.reader import gather_transitions
from logo.dims import Batch

if TYPE_CHECKING:
    from logo.world_model.base import WorldModel


def open_loop_starts(storage: Batch, indices: torch.Tensor, k: int, limit: int) -> torch.Tensor:
    """Up to ``limit`` steps of ``indices`` followed by k dataset transitions inside one episode,
    spread evenly over ``indices`` (deterministic). Episodes end only at their last step, so a
    termination can only end the k-th transition."""
    ep = storage["episode_id"]
    ends = indices + k - 1
    inside = ends <= len(ep) - 1
    valid = indices[inside][ep[ends[inside]] == ep[indices[inside]]]
    if len(valid) > limit:
        valid = valid[torch.linspace(0, len(valid) - 1, limit, device=valid.device).long()]
    return valid


@torch.no_grad()
def open_loop_errors(model: WorldModel, storage: Batch, indices: torch.Tensor, steps: Sequence[int],
                     starts: int) -> dict[int, float]:
    """Mean squared next-state error (standardised units) after k open-loop model steps along the dataset's
    own actions, for each k in ``steps`` (a k without any start is left out).

    Args:
        model: the world model, in eval mode (its ``step`` without a generator: deterministic).
        storage: the dataset's arrays on the model's device (``datamodule.storage_on(model.device)``).
        indices: transitions the starts are drawn from, e.g. the held-out ``datamodule.val_indices``.
        steps: horizons k (a world model's ``open_loop_steps`` hparam).
        starts: at most this many start transitions per k (its ``open_loop_starts`` hparam), see
            :func:`open_loop_starts`.

    Example:
        >>> model, dm = cli.model.eval(), cli.datamodule  # doctest: +SKIP
        >>> open_loop_errors(model, dm.storage_on(model.device), dm.val_indices, [1, 5, 15], 256)  # doctest: +SKIP
        {1: 0.043, 5: 0.18, 15: 0.40}
    """
    indices = indices.to(model.device)
    out = {}
    for k in steps:
        first_idx = open_loop_starts(storage, indices, k, starts)
        if len(first_idx) == 0:
            continue
        first = gather_transitions(storage, first_idx)
        obs, state = first["obs"], first["state"]
        for j in range(k):
            step = first if j == 0 else gather_transitions(storage, first_idx + j)
            result = model.step(obs, state, step["actions"])
            obs, state = result.next_obs, result.next_state
        error = (model.state_norm(state) - model.state_norm(step["next_state"])) ** 2
        out[k] = float(error.mean())
    return out
