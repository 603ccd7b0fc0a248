"""Multi-agent conservative Q-learning for continuous actions: decentralised SAC actors, a centralised CQL critic."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torchmetrics import MeanMetric

from logo.errors import LogoError
from logo.loggers import logs_this_step
from logo.nn import AgentSharedMLP, TwinCritic, tanh_gaussian_sample
from logo.policy.losses import soft_update, td_target, weighted_mean
from logo.policy.macql_losses import cql_continuous_penalty
from logo.policy.offline import OfflinePolicy

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class ContinuousMACQL(OfflinePolicy):
    """MACQL for continuous actions: CQL(H) (Kumar et al., 2020) on a centralised twin critic, SAC actors.

    Actors are decentralised: one network shared by all agents (plus agent id) maps each agent's
    own current observation to a tanh-squashed Gaussian over its actions (feed-forward, no
    recurrence). The twin critic is centralised: it scores (global state, joint action) with the
    joint action in [-1, 1] units. Each update minimises, for every transition,

    - the squared TD error of both critics to ``reward_scale * r + gamma * (1 - terminal) *
      (min(Q1', Q2')(s', a') - alpha * log pi(a'|o'))``, a' drawn from the current actors at o'
      (target critic, no gradient; truncated steps bootstrap),
    - plus ``cql_alpha`` times both critics' CQL penalty, estimated from ``cql_samples`` uniform joint
      actions and ``cql_samples`` policy actions at o and at o' (all scored at s),
    - the actor loss ``alpha * log pi(a|o) - min(Q1, Q2)(s, a)`` through a frozen critic,
    - and the entropy-temperature loss ``-log_alpha * (log pi + target)`` on detached log-probs,

    each averaged under the batch's transition ``weights``. One Adam steps all three parameter groups,
    so ``trainer.global_step`` counts updates; the target critic follows by Polyak averaging.

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked).
        action_kind: must be continuous (linked).
        action_size: per-agent action dimension (linked).
        hidden_sizes: widths of the actor's and each critic's hidden layers.
        actor_lr: Adam learning rate of the actor and of the entropy temperature.
        critic_lr: Adam learning rate of the twin critic.
        gamma: discount factor.
        tau: Polyak rate of the target critic, per update.
        cql_alpha: weight of the CQL penalty in each critic's loss.
        cql_samples: uniform actions, and policy actions at o and at o' each, per transition for the penalty.
        cql_synthetic: the CQL penalty on synthetic rows, whose "data" action is the policy's own rollout action:
            ``push_down`` (only the push-down part there), ``balanced`` (COMBO: push-down on synthetic rows, push-up on
            real rows in equal mass, so the Q level is not pushed down), ``skip`` or ``full`` (as on real rows).
        cql_synthetic_weight: weight of the synthetic rows in that penalty's mean, relative to real rows (0 is
            ``skip``; with ``push_down``, how hard model rows are pushed down, and so how far the Q level moves).
        reward_scale: factor on the dataset's rewards in the TD target.
        target_entropy: target entropy per agent; the joint target is ``n_agents`` times it (None: -action_size).
        init_entropy_alpha: initial entropy temperature alpha.
        learn_entropy_alpha: tune alpha towards the target entropy; otherwise it stays at its initial value.

    Example:
        >>> policy = ContinuousMACQL(3, 12, 12, "continuous", 2, hidden_sizes=[64, 64])
        >>> policy.act(torch.zeros(5, 3, 12)).shape  # [B, N, action_dim]
        torch.Size([5, 3, 2])
    """

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (256, 256), actor_lr: float = 1e-4, critic_lr: float = 3e-4,
                 gamma: float = 0.99, tau: float = 0.005, cql_alpha: float = 5.0, cql_samples: int = 10,
                 cql_synthetic: Literal["push_down", "balanced", "skip", "full"] = "push_down",
                 cql_synthetic_weight: float = 1.0, reward_scale: float = 1.0, target_entropy: float | None = None,
                 init_entropy_alpha: float = 0.1,
                 learn_entropy_alpha: bool = True):
        super().__init__(n_agents, obs_dim, state_dim, action_kind, action_size)
        self.save_hyperparameters()
        self.require("continuous")
        if cql_synthetic_weight < 0:
            raise LogoError(f"cql_synthetic_weight must be >= 0 (the synthetic rows' weight in the CQL penalty); got "
                            f"{cql_synthetic_weight}")
        hidden = list(hidden_sizes)
        self.actor = AgentSharedMLP(n_agents, obs_dim, 2 * action_size, hidden)  # -> mean, log_std
        self.critic = TwinCritic(state_dim, n_agents * action_size, hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_entropy_alpha)), requires_grad=learn_entropy_alpha)
        per_agent = -float(action_size) if target_entropy is None else float(target_entropy)
        self.target_entropy = n_agents * per_agent  # of the joint policy, whose log-prob sums over agents
        self.val_loss = MeanMetric()
        self.val_q_data = MeanMetric()

    # ---- acting -------------------------------------------------------------------------------

    def actor_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw obs [..., N, obs_dim] -> mean, log_std [..., N, action_dim] of the pre-tanh Gaussian."""
        mean, log_std = self.actor(self.obs_norm(obs.to(self.action_low.dtype))).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw obs [..., N, obs_dim] -> actions [..., N, action_dim] in [-1, 1] and joint log-probs [...]."""
        return tanh_gaussian_sample(*self.actor_params(obs), generator=generator, deterministic=deterministic)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
            state: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic actions ``tanh(mean)`` [B, N, action_dim] in the dataset's bounds (``avail_actions``
        and ``state`` are unused: each agent acts on its own observation)."""
        mean, _ = self.actor_params(obs)
        return self.unscale_actions(torch.tanh(mean))

    @torch.no_grad()
    def rollout_act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
                    state: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions sampled from the actors [B, N, action_dim] in the dataset's bounds, noise from ``generator``."""
        actions, _ = self.sample(obs, generator=generator)
        return self.unscale_actions(actions)

    # ---- critic -------------------------------------------------------------------------------

    def q_values(self, critic: nn.Module, state: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw state [B, state_dim] and joint actions in [-1, 1] [B, ..., N, A] -> (q1, q2) [B, ...]."""
        lead = actions.shape[:-2]
        state = self.state_norm(state.to(actions.dtype))
        state = state.view(state.shape[0], *(1,) * (len(lead) - 1), -1).expand(*lead, -1)  # [B, ..., S]
        q1, q2 = critic(state.reshape(-1, state.shape[-1]), actions.reshape(-1, *actions.shape[-2:]))
        return q1.view(lead), q2.view(lead)

    @torch.no_grad()
    def q_tot(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2) [B] of joint actions [B, N, action_dim] in the dataset's bounds at raw state [B, state_dim]
        (``obs`` is unused: the critic is centralised), e.g. a planner's value of the end of a plan."""
        return torch.min(*self.q_values(self.critic, state, self.scale_actions(actions)))

    def soft_td_target(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """Soft clipped double-Q target [B] from the target critic and the current actors at next_obs."""
        hp = self.hparams
        with torch.no_grad():
            next_actions, next_log_prob = self.sample(batch["next_obs"], generator=generator)  # [B, N, A], [B]
            next_q = torch.min(*self.q_values(self.critic_target, batch["next_state"], next_actions))
            soft_q = next_q - self.log_alpha.exp() * next_log_prob
            return td_target(hp.reward_scale * batch["rewards"], batch["terminals"], soft_q, hp.gamma)

    def critic_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-transition [B] ``td`` (squared TD errors, summed over both critics), ``cql`` (both critics'
        penalties, summed) and ``q_data`` (critic 1 at the dataset actions; detached)."""
        k, n, a = self.hparams.cql_samples, self.n_agents, self.action_size
        state, obs, next_obs = batch["state"], batch["obs"], batch["next_obs"]
        b = len(state)
        target = self.soft_td_target(batch)
        q1, q2 = self.q_values(self.critic, state, self.scale_actions(batch["actions"]))  # [B]
        td = (q1 - target).square() + (q2 - target).square()
        with torch.no_grad():
            random = torch.rand(b, k, n, a, device=state.device, dtype=q1.dtype) * 2 - 1  # [B, K, N, A]
            pi_now, log_prob_now = self.sample(obs.unsqueeze(1).expand(b, k, *obs.shape[1:]))  # [B, K, N, A], [B, K]
            pi_next, log_prob_next = self.sample(next_obs.unsqueeze(1).expand(b, k, *next_obs.shape[1:]))
        log_prob_policy = torch.cat([log_prob_now, log_prob_next], dim=1)  # [B, 2K]
        log_density_random = -n * a * math.log(2.0)  # uniform on [-1, 1]^(N*A)
        cq1, cq2 = self.q_values(self.critic, state, torch.cat([random, pi_now, pi_next], dim=1))  # [B, 3K]
        cql = sum(cql_continuous_penalty(cq[:, :k], cq[:, k:], q, log_density_random, log_prob_policy)
                  for cq, q in ((cq1, q1), (cq2, q2)))
        return {"td": td, "cql": cql, "q_data": q1.detach(), "q_data_attached": q1 + q2}

    # ---- actor --------------------------------------------------------------------------------

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition actor loss [B] through a frozen critic (gradients reach the actor only), and the
        sampled actions' joint log-probs [B] (attached)."""
        actions, log_prob = self.sample(batch["obs"])
        self.critic.requires_grad_(False)
        try:
            q = torch.min(*self.q_values(self.critic, batch["state"], actions))
        finally:
            self.critic.requires_grad_(True)
        return self.log_alpha.exp().detach() * log_prob - q, log_prob

    # ---- training -----------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        weights = batch.get("weights")
        critic = self.conservative_td_loss(self.critic_losses(batch), batch)
        actor, log_prob = self.actor_loss(batch)
        actor = self.log_split("actor_loss", actor, batch)
        loss = critic + actor
        if self.hparams.learn_entropy_alpha:
            loss = loss - self.log_alpha * weighted_mean(log_prob.detach() + self.target_entropy, weights)
        if logs_this_step(self):
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/entropy_alpha", self.log_alpha.exp().detach())
            self.log("train/log_prob", weighted_mean(log_prob.detach(), weights))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        soft_update(self.critic_target, self.critic, self.hparams.tau)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.Adam([
            {"params": self.actor.parameters(), "lr": hp.actor_lr},
            {"params": self.critic.parameters(), "lr": hp.critic_lr},
            {"params": [self.log_alpha], "lr": hp.actor_lr},
        ], foreach=True)

    # ---- evaluation ---------------------------------------------------------------------------

    def _held_out(self, batch: dict[str, torch.Tensor], batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared TD error of critic 1 and its mean Q at the dataset actions (target noise seeded by
        ``batch_idx``, so the numbers are comparable across evaluations)."""
        generator = torch.Generator(device=self.device).manual_seed(batch_idx)
        target = self.soft_td_target(batch, generator=generator)
        q1, _ = self.q_values(self.critic, batch["state"], self.scale_actions(batch["actions"]))
        return (q1 - target).square().mean(), q1.mean()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, q_data = self._held_out(batch, batch_idx)
        n = len(batch["rewards"])
        self.val_loss.update(loss, n)
        self.val_q_data.update(q_data, n)
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/q_data", self.val_q_data)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, q_data = self._held_out(batch, batch_idx)
        self.log("test/loss", loss)
        self.log("test/q_data", q_data)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Deterministic actions [B, N, action_dim] for the batch's observations."""
        return self.act(batch["obs"])
