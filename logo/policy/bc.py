"""Behaviour cloning: the baseline every offline MARL result reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric

from logo.dims import ACTING_DIMS, linked_dims
from logo.errors import check_fits
from logo.loggers import logs_this_step
from logo.nn import AgentSharedMLP, Normalizer, from_unit_box
from logo.policy.checkpoint import ActingPolicy
from logo.policy.losses import bc_continuous_loss, bc_discrete_loss, mask_logits


class BCPolicy(ActingPolicy, LightningModule):
    """Decentralised behaviour cloning with one network shared by all agents (plus agent id).

    Each agent acts on its own current observation (feed-forward, no recurrence). Discrete
    actions: masked cross-entropy; continuous actions: tanh output scaled to the dataset's action
    bounds, trained by mean squared error. Observation statistics and action bounds are copied
    from the data module at ``setup`` and saved with the checkpoint, so a loaded policy acts
    on raw environment observations.

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

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (256, 256), lr: float = 3e-4, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.discrete = action_kind == "discrete"
        self.net = AgentSharedMLP(n_agents, obs_dim, action_size, list(hidden_sizes))
        self.obs_norm = Normalizer((n_agents, obs_dim))
        self.register_buffer("action_low", -torch.ones(action_size))
        self.register_buffer("action_high", torch.ones(action_size))
        self.val_loss = MeanMetric()
        self.val_accuracy = MeanMetric()

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self.trainer is not None else None
        if dm is None or not getattr(dm, "statistics", None):
            return
        check_fits(self.hparams, linked_dims(dm, ACTING_DIMS), "BCPolicy", f"dataset {dm.path}")
        if stage == "fit":
            stats = dm.statistics
            self.obs_norm.set_stats(stats["obs_mean"], stats["obs_std"])
            if not self.discrete:
                self.action_low.copy_(stats["action_low"])
                self.action_high.copy_(stats["action_high"])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [B, N, obs_dim] -> logits [B, N, n_actions] or actions [B, N, action_dim] in bounds."""
        out = self.net(self.obs_norm(obs))
        if self.discrete:
            return out
        return from_unit_box(torch.tanh(out), self.action_low, self.action_high)

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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
