"""Baseline: the direct joint model, one network over the whole joint transition.

``(s, o_1..o_N, a_1..a_N) -> N([s', o_1'..o_N', r]), done, legal'`` with a diagonal Gaussian
head, the way single-agent model-based offline RL (MOPO, MOReL) models dynamics. LOGO's
premise is that this high-dimensional joint prediction is harder than local-then-global
prediction; the benchmark compares the two at the same parameter count. Its uncertainty is
aleatoric: the norm of the predicted next-state standard deviation (standardised units).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from logo.dims import Batch, linked_dims
from logo.nn import MLP, LogStdBounds
from logo.world_model.base import Prediction, WorldModel
from logo.world_model.losses import gaussian_nll, legal_action_loss, termination_loss

BOUNDS_PENALTY = 0.01


class JointOutputs(WorldModel):
    """Layout shared by the direct and the ensemble model: one vector in, one vector out.

    Input ``[s, o_1..o_N, a_1..a_N]``; output ``[mean, raw log-std]`` of the Gaussian over
    ``[s' (S), o' (N*O), r (1)]`` (delta units), a termination logit and N*n_actions legal logits.
    """

    def __init__(self, termination_weight: float = 1.0, legal_weight: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        n, o, s, a = self.n_agents, self.obs_dim, self.state_dim, self.action_size
        self.in_dim = s + n * o + n * a
        self.gaussian_dim = s + n * o + 1
        self.n_legal = n * a if self.discrete else 0
        self.out_dim = 2 * self.gaussian_dim + 1 + self.n_legal
        self.bounds = LogStdBounds(self.gaussian_dim)

    def joint_input(self, inputs: Batch) -> torch.Tensor:
        return torch.cat([inputs["state"], inputs["obs"].flatten(1), inputs["actions"].flatten(1)], -1)

    def split(self, out: torch.Tensor) -> Batch:
        """out [..., out_dim] -> mean / log_std [..., G], done_logit [...], legal_logit [..., N, A]."""
        g = self.gaussian_dim
        heads = {"mean": out[..., :g], "log_std": self.bounds(out[..., g:2 * g]), "done_logit": out[..., 2 * g]}
        if self.discrete:
            heads["legal_logit"] = out[..., 2 * g + 1:].unflatten(-1, (self.n_agents, self.action_size))
        return heads

    def gaussian_target(self, targets: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Target [B, G] and its feature mask [G] (padded observation features excluded)."""
        target = torch.cat([targets["state_delta"], targets["obs_delta"].flatten(1),
                            targets["rewards"].unsqueeze(-1)], -1)
        ones = torch.ones(self.state_dim, dtype=torch.bool, device=target.device)
        mask = torch.cat([ones, self.obs_mask.flatten(), ones[:1]])
        return target, mask

    def joint_loss(self, heads: Batch, targets: Batch) -> Batch:
        """Loss parts of heads ``[B, ...]`` or, for the ensemble, ``[K, B, ...]`` (the mean over members,
        as every member sees the same batch); includes the log-std bounds penalty."""
        target, mask = self.gaussian_target(targets)
        parts = {"nll": gaussian_nll(heads["mean"], heads["log_std"], target, mask, self.hparams.nll_beta),
                 "termination": termination_loss(heads["done_logit"],
                                                 targets["terminals"].expand_as(heads["done_logit"]))}
        loss = parts["nll"] + self.hparams.termination_weight * parts["termination"]
        if self.discrete:
            parts["legal"] = legal_action_loss(heads["legal_logit"],
                                               targets["next_avail"].expand_as(heads["legal_logit"]))
            loss = loss + self.hparams.legal_weight * parts["legal"]
        parts["loss"] = loss + BOUNDS_PENALTY * self.bounds.penalty()
        return parts

    def state_std_units(self, x: torch.Tensor) -> torch.Tensor:
        """State part of a Gaussian output in delta units -> standardised state units (same shape)."""
        if not self.hparams.predict_deltas:
            return x
        return x * (self.state_delta_norm.std / self.state_norm.std)

    def to_prediction(self, inputs: Batch, mean: torch.Tensor, std: torch.Tensor, done_logit: torch.Tensor,
                      legal_logit: torch.Tensor | None, uncertainty: torch.Tensor) -> Prediction:
        s, n, o = self.state_dim, self.n_agents, self.obs_dim
        next_state, next_state_std = self.next_state_from(inputs["state"], mean[:, :s], std[:, :s])
        obs_mean = mean[:, s:s + n * o].unflatten(-1, (n, o))
        obs_std = std[:, s:s + n * o].unflatten(-1, (n, o))
        next_obs, next_obs_std = self.next_obs_from(inputs["obs"], obs_mean, obs_std)
        return Prediction(next_obs=next_obs, next_state=next_state, reward=mean[:, -1], done_logit=done_logit,
                          avail_logit=legal_logit, uncertainty=uncertainty, next_obs_std=next_obs_std,
                          next_state_std=next_state_std, reward_std=std[:, -1])


class DirectWorldModel(JointOutputs):
    """One MLP over the joint transition (see the module docstring).

    Args:
        width: hidden width; ``None`` picks the width that matches the parameter count of a
            :class:`~logo.world_model.logo.LogoWorldModel` with the same dims and ``match_logo`` arguments.
        depth: number of hidden layers.
        match_logo: LOGO architecture arguments (``hidden_sizes``, ``latent_dim``, ...) used when ``width`` is None.
        termination_weight: weight of the termination cross-entropy.
        legal_weight: weight of the next-legal-actions cross-entropy (discrete actions).
        **kwargs: dims and training options of :class:`~logo.world_model.base.WorldModel`.
    """

    def __init__(self, width: int | None = None, depth: int = 3, match_logo: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if width is None:
            width = matched_width(self.in_dim, self.out_dim, depth, logo_parameter_count(self.hparams, match_logo)
                                  - self.bounds.min_log_std.numel() * 2)
        self.width = width
        self.net = MLP(self.in_dim, [width] * depth, self.out_dim)

    def loss_parts(self, inputs: Batch, targets: Batch) -> Batch:
        return self.joint_loss(self.split(self.net(self.joint_input(inputs))), targets)

    def predict(self, inputs: Batch, generator: torch.Generator | None = None) -> Prediction:
        heads = self.split(self.net(self.joint_input(inputs)))
        std = heads["log_std"].exp()
        u = self.state_std_units(std[:, :self.state_dim]).norm(dim=-1)
        return self.to_prediction(inputs, heads["mean"], std, heads["done_logit"], heads.get("legal_logit"), u)


def logo_parameter_count(hparams: Any, match_logo: dict[str, Any] | None) -> int:
    """Parameters of a LogoWorldModel with the dims in ``hparams`` and the architecture in ``match_logo``."""
    from logo.world_model.logo import LogoWorldModel

    return sum(p.numel() for p in LogoWorldModel(**linked_dims(hparams), **(match_logo or {})).parameters())


def matched_width(in_dim: int, out_dim: int, depth: int, budget: int) -> int:
    """Width w of ``depth`` equal hidden layers whose MLP has about ``budget`` parameters.

    params(w) = (in+1) w + (depth-1)(w+1) w + (w+1) out; solved for w (positive root).
    """
    a = depth - 1
    b = in_dim + 1 + (depth - 1) + out_dim
    c = out_dim - budget
    if a == 0:
        return max(1, round(-c / b))
    return max(1, round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))
