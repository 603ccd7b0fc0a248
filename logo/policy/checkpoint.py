"""Policies saved by logo act again from their checkpoint file alone.

Every acting LightningModule in logo mixes in ``ActingPolicy``: its checkpoints record the
class that wrote them, so ``load_policy(path)`` rebuilds the right module without the user
naming it, and ``CheckpointPolicy`` turns it into a ``logo.envs`` policy for collection and
evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch import LightningModule

from logo.checkpoint import load_recorded, record_class
from logo.dims import ACTING_DIMS, linked_dims
from logo.envs.base import EnvSpec, TimeStep
from logo.errors import LogoError, check_fits
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


class CheckpointPolicy:
    """A logo policy module acting greedily in a ``logo.envs`` environment.

    Args:
        module: a module with ``act`` (see ``ActingPolicy``).
        spec: the environment's spec; the module's dims must match it.
    """

    def __init__(self, module: LightningModule, spec: EnvSpec):
        if not callable(getattr(module, "act", None)):
            raise LogoError(f"{type(module).__name__} is not a policy (it has no act()); pass the checkpoint of a "
                            "policy (BCPolicy, DiscreteMACQL, ContinuousMACQL, OnlineTD3)")
        check_fits(getattr(module, "hparams", {}), linked_dims(spec, ACTING_DIMS), f"policy {type(module).__name__}",
                   f"{spec.family}/{spec.scenario}", ("checkpoint", "environment"),
                   hint="evaluate it in the environment of the dataset it was trained on (`logo data check` "
                        "compares a dataset with an environment)")
        self.module, self.spec = module, spec

    def seed(self, seed: int) -> None:
        """Greedy policies have no randomness."""

    def act(self, ts: TimeStep) -> np.ndarray:
        device = self.module.device
        obs = torch.as_tensor(ts.obs, device=device)
        avail = None if ts.avail_actions is None else torch.as_tensor(ts.avail_actions, device=device)
        state = torch.as_tensor(ts.state, device=device)
        with torch.no_grad():
            actions = self.module.act(obs, avail_actions=avail, state=state)
        return actions.cpu().numpy().astype(np.int64 if self.spec.discrete else np.float32)
