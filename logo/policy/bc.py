"""Behaviour cloning: the baseline every offline MARL result reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torchmetrics import MeanMetric

from logo.dims import ACTING_DIMS
from logo.loggers import logs_this_step
from logo.nn import AgentSharedMLP
from logo.policy.losses import bc_continuous_loss, bc_discrete_loss, mask_logits
from logo.policy.offline import OfflinePolicy


class BCPolicy(OfflinePolicy):
    """Decentralised behaviour cloning with one network shared by all agents (plus agent id).

    Each agent acts on its own current observation (feed-forward, no recurrence). Discrete
    actions: masked cross-entropy; continuous actions: tanh output scaled to the dataset's action
    bounds, trained by mean squared error. Observation statistics and action bounds are copied
    from the data module at ``setup`` and saved with the checkpoint, so a loaded policy acts
    on raw environment observations. Its units and ``setup`` are :class:`OfflinePolicy`'s, but it
    checks only the dims a decentralised policy depends on (``ACTING_DIMS``: not ``state_dim``).

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked; unused by BC, which acts on local observations).
        action_kind: discrete or continuous actions (linked).
        action_size: number of discrete actions or continuous action dimension (linked).
        hidden_sizes: widths of the shared MLP's hidden layers.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
    """

    checked_dims: ClassVar[tuple[str, ...]] = ACTING_DIMS

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (256, 256), lr: float = 3e-4, weight_decay: float = 0.0):
        super().__init__(n_agents, obs_dim, state_dim, action_kind, action_size)  # units: buffers, no random draws
        self.save_hyperparameters()
        self.net = AgentSharedMLP(n_agents, obs_dim, action_size, list(hidden_sizes))
        self.val_loss = MeanMetric()
        self.val_accuracy = MeanMetric()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before BCPolicy was an OfflinePolicy have no state_norm (unused by BC): its defaults
        self.fill_missing_units(checkpoint["state_dict"])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [B, N, obs_dim] -> logits [B, N, n_actions] or actions [B, N, action_dim] in bounds."""
        out = self.net(self.obs_norm(obs))
        if self.discrete:
            return out
        return self.unscale_actions(torch.tanh(out))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
            state: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy actions: [B, N] int64 (discrete, legal only) or [B, N, action_dim] float; ``state`` is unused."""
        out = self(obs)
        return mask_logits(out, avail_actions).argmax(-1) if self.discrete else out

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self(batch["obs"])
        weights = batch.get("weights")
        if self.discrete:
            avail = batch.get("avail_actions")
            loss = bc_discrete_loss(out, batch["actions"], avail, weights)
            accuracy = (mask_logits(out, avail).argmax(-1) == batch["actions"]).float().mean()
            return loss, accuracy
        return bc_continuous_loss(out, batch["actions"], weights), None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        if logs_this_step(self):
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, accuracy = self._loss(batch)
        n = len(batch["rewards"])
        self.val_loss.update(loss, n)
        self.log("val/loss", self.val_loss, prog_bar=True)
        if accuracy is not None:
            self.val_accuracy.update(accuracy, n)
            self.log("val/accuracy", self.val_accuracy)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, accuracy = self._loss(batch)
        self.log("test/loss", loss)
        if accuracy is not None:
            self.log("test/accuracy", accuracy)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Greedy actions for the batch's observations (legal ones for discrete actions)."""
        return self.act(batch["obs"], batch.get("avail_actions"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                foreach=True)
