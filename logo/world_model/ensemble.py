"""Baseline: a probabilistic ensemble of joint models (MOPO / MOMA-PPO style).

K members (default 7) share the direct model's input/output layout and are evaluated as one
vectorised network (:class:`logo.nn.EnsembleMLP`, batched matmuls). Members differ only by
their independent initialisation and are trained on the same batches, as in MBPO. After each
validation epoch the ``elites`` members with the lowest held-out error (standardised MSE of
next state, observations and reward) are kept for prediction.

Prediction: with a generator (rollouts), each row uses one randomly chosen elite (MOPO);
without one (validation metrics, open-loop error), the mean of the elites. Uncertainty over
the elites' next-state Gaussians, in standardised state units:

* ``max_std``: max_k ||sigma_k|| (MOPO's aleatoric penalty);
* ``pairwise_diff``: max_{k,l} ||mu_k - mu_l|| (largest disagreement, MOMA-PPO/M2AC style);
* ``ensemble_std``: || std_k(mu_k) || (spread of the means).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from logo.dims import Batch
from logo.nn import EnsembleMLP
from logo.world_model.base import Prediction
from logo.world_model.joint import JointOutputs

UncertaintyMode = Literal["max_std", "pairwise_diff", "ensemble_std"]


class EnsembleWorldModel(JointOutputs):
    """K joint Gaussian models in one vectorised network, with elites and three uncertainty modes.

    Args:
        ensemble_size: number of members K.
        elites: members kept for prediction, chosen by held-out error after each validation epoch.
        hidden_sizes: hidden widths of every member (MOPO uses four layers of 200).
        uncertainty: how u is computed from the elites (see the module docstring).
        termination_weight: weight of the termination cross-entropy.
        legal_weight: weight of the next-legal-actions cross-entropy (discrete actions).
        **kwargs: dims and training options of :class:`~logo.world_model.base.WorldModel`.
    """

    def __init__(self, ensemble_size: int = 7, elites: int = 5, hidden_sizes: Sequence[int] = (200, 200, 200, 200),
                 uncertainty: UncertaintyMode = "max_std", **kwargs: Any):
        if not 1 <= elites <= ensemble_size:
            raise ValueError(f"elites: expected 1 <= elites <= ensemble_size ({ensemble_size}), got {elites}")
        super().__init__(**kwargs)
        self.net = EnsembleMLP(ensemble_size, self.in_dim, list(hidden_sizes), self.out_dim)
        self.register_buffer("elite_idx", torch.arange(elites))
        self.register_buffer("member_sq_error", torch.zeros(ensemble_size), persistent=False)
        self.register_buffer("member_count", torch.zeros(()), persistent=False)

    def members(self, inputs: Batch) -> Batch:
        """Heads of every member, [K, B, ...]."""
        return self.split(self.net(self.joint_input(inputs)))

    def loss_parts(self, inputs: Batch, targets: Batch) -> Batch:
        return self.joint_loss(self.members(inputs), targets)  # all members at once, [K, B, ...]

    def predict(self, inputs: Batch, generator: torch.Generator | None = None) -> Prediction:
        heads = {name: v[self.elite_idx] for name, v in self.members(inputs).items()}  # [E, B, ...]
        mean, std = heads["mean"], heads["log_std"].exp()
        legal = heads.get("legal_logit")
        u = self.uncertainty(mean, std)
        if generator is None:  # elite mean
            pick_mean, pick_std, done = mean.mean(0), std.mean(0), heads["done_logit"].mean(0)
            legal = None if legal is None else legal.mean(0)
        else:  # one random elite per row
            e, b = mean.shape[:2]
            choice = torch.randint(e, (b,), generator=generator, device=mean.device)
            rows = torch.arange(b, device=mean.device)
            pick_mean, pick_std, done = mean[choice, rows], std[choice, rows], heads["done_logit"][choice, rows]
            legal = None if legal is None else legal[choice, rows]
        return self.to_prediction(inputs, pick_mean, pick_std, done, legal, u)

    def uncertainty(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Elites' next-state means/stds [E, B, G] -> u [B] in standardised state units."""
        mu = self.state_std_units(mean[..., :self.state_dim])
        sigma = self.state_std_units(std[..., :self.state_dim])
        mode = self.hparams.uncertainty
        if mode == "max_std":
            return sigma.norm(dim=-1).amax(0)
        if mode == "pairwise_diff":
            return (mu.unsqueeze(0) - mu.unsqueeze(1)).norm(dim=-1).amax((0, 1))
        return mu.std(0, unbiased=False).norm(dim=-1)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        inputs, targets = self.normalise_inputs(batch["obs"], batch["state"], batch["actions"]), self.targets(batch)
        target, mask = self.gaussian_target(targets)
        err = ((self.members(inputs)["mean"] - target) ** 2 * mask).sum(-1)  # [K, B]
        self.member_sq_error += err.sum(-1)
        self.member_count += len(target) * mask.sum()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer is not None:  # under DDP every rank must pick the same elites
            self.member_sq_error = self.trainer.strategy.reduce(self.member_sq_error, reduce_op="sum")
            self.member_count = self.trainer.strategy.reduce(self.member_count, reduce_op="sum")
        if self.member_count > 0:
            error = self.member_sq_error / self.member_count
            self.elite_idx.copy_(error.argsort()[:self.hparams.elites].sort().values)
            self.log("val/elite_mse", error[self.elite_idx].mean(), sync_dist=True)
        self.member_sq_error.zero_()
        self.member_count.zero_()
