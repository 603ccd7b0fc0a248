"""Policies saved by logo act again from their checkpoint file alone.

Every acting LightningModule in logo mixes in ``ActingPolicy``: its checkpoints record the
class that wrote them, so ``load_policy(path)`` rebuilds the right module without the user
naming it, and ``logo.envs.policies.ModulePolicy`` turns it into a ``logo.envs`` policy for
collection and evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule

from logo.checkpoint import load_recorded, record_class
from logo.metrics import reset_metrics


class ActingPolicy:
    """Mixin for LightningModules that act: ``act(obs, avail_actions=None, state=None)`` and a recorded class.

    ``act`` takes torch tensors obs [B, N, obs_dim], avail_actions [B, N, n_actions] or None and state
    [B, state_dim] or None, and returns greedy actions [B, N] int64 or [B, N, action_dim] float.
    """

    checkpoint_kind: ClassVar[str] = "policy"  # checkpoints record the class as ``logo_policy_class``

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record_class(self, checkpoint)

    def on_fit_start(self) -> None:
        reset_metrics(self)  # metric states left by an earlier Trainer.validate are inference tensors


def load_policy(path: str | Path, map_location: str | torch.device = "cpu") -> LightningModule:
    """Load the acting module saved in checkpoint ``path`` (in eval mode)."""
    return load_recorded(path, ActingPolicy.checkpoint_kind, map_location).eval()
