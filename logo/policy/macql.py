"""MACQL for discrete actions: per-agent Q networks, a mixer, and the conservative (CQL) term.

The variant: CQL applied to the joint action of a value-decomposition learner, as the CFCQL
paper (Shao et al., 2023) describes its MACQL baseline. ``Q_tot(s, a) = mixer(Q_1(o_1, a_1), ...,
Q_N(o_N, a_N); s)`` is trained by TD learning, and ``cql_alpha * [log sum_a exp Q_tot(s, a) -
Q_tot(s, a_data)]`` pushes down every joint action that is not the dataset's. The sum over the
A^N joint actions is estimated from ``cql_samples`` uniformly drawn legal joint actions
(``cql_mode: joint``); ``cql_mode: local`` uses the exact per-agent term on each Q_i instead, and
``cql_mode: counterfactual`` CFCQL's exact term on Q_tot, one agent deviating from the data at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.profiler import record_function
from torchmetrics import MeanMetric

from logo.dims import Batch
from logo.errors import LogoError
from logo.loggers import logs_this_step
from logo.nn import AgentSharedMLP, QMixer, VDNMixer
from logo.policy.losses import soft_update, td_target
from logo.policy.macql_losses import (
    counterfactual_cql_penalty,
    counterfactual_joint_actions,
    greedy_legal,
    joint_cql_penalty,
    local_cql_penalty,
    sample_legal_joint_actions,
)
from logo.policy.offline import OfflinePolicy


class DiscreteMACQL(OfflinePolicy):
    """Multi-agent conservative Q-learning for discrete actions (SMAX, SMAC, MPE).

    Each agent's Q network acts on its own current observation only (feed-forward, parameters
    shared across agents with a one-hot agent id; no recurrence). Legal-action masks are applied
    to the greedy action, to the target's next action and to the CQL term. Targets use double Q
    learning (the online network picks, the target network scores) and Polyak-averaged targets.

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked; input of the QMIX mixer).
        action_kind: must be discrete (linked).
        action_size: number of discrete actions (linked).
        hidden_sizes: widths of the agent network's hidden layers.
        mixer: ``qmix`` (monotonic hypernetwork mixer on the state) or ``vdn`` (sum).
        mixer_embed: width of the QMIX mixing layer.
        lr: Adam learning rate.
        gamma: discount factor.
        tau: Polyak rate of the target networks, per update.
        cql_alpha: weight of the conservative term (0: plain offline QMIX/VDN).
        cql_mode: ``joint`` (MACQL: CQL on the joint action, sampled), ``local`` (exact per-agent CQL on each Q_i)
            or ``counterfactual`` (CFCQL: exact, on Q_tot, one agent deviating from the data's joint action at a time).
        cql_samples: joint actions sampled per transition for ``cql_mode: joint``.
        cql_temperature: T of the conservative term's log-sum-exp, ``T * logsumexp(Q / T)``, in the units of Q
            (``reward_scale`` times the reward). 1 is CQL(H). Its gradient pushes the data action up by
            ``1 - softmax_T(Q)[data]`` per row, so where Q's action gaps are small next to T the data action sits
            about ``cql_alpha / 2`` above its TD target at every step, and bootstrapping compounds that into the
            level of Q (``train/td_bias``); a small T aims the push-down at the greedy action and leaves a data
            action that is already greedy at its TD target.
        cql_synthetic: the CQL term on synthetic rows, whose "data" action is the policy's own rollout action:
            ``push_down`` (only the push-down part there), ``balanced`` (COMBO: push-down on synthetic rows, push-up on
            real rows in equal mass, so the Q level is not pushed down), ``skip`` or ``full`` (as on real rows).
        cql_synthetic_weight: weight of the synthetic rows in that term's mean, relative to real rows (0 is
            ``skip``; with ``push_down``, how hard model rows are pushed down, and so how far the Q level moves).
        reward_scale: rewards are multiplied by this in the TD target.
        double_q: pick the next action with the online network (True) or the target network.
        rollout_epsilon: per-agent probability of a uniformly random legal action in world-model rollouts.
        layer_norm: LayerNorm before each hidden activation of the agent network (a lever against the critic's
            extrapolation off the data, in the spirit of LayerNorm critics for offline RL).
        weight_decay: decoupled weight decay (AdamW) on the agent network and mixer; 0 keeps plain Adam.
        compile_losses: run training steps' :meth:`losses` (forward and backward) through ``torch.compile``
            (opt-in; the first update compiles, about a minute on a CPU; validation stays eager). Random draws use
            eager's generator (inductor's ``fallback_random``), so the numbers match eager's up to float
            summation order (``benchmarks/compile_losses.py`` measures both).
    """

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (256, 256), mixer: Literal["qmix", "vdn"] = "qmix",
                 mixer_embed: int = 32, lr: float = 3e-4, gamma: float = 0.99, tau: float = 0.005,
                 cql_alpha: float = 1.0, cql_mode: Literal["joint", "local", "counterfactual"] = "joint",
                 cql_samples: int = 32, cql_temperature: float = 1.0,
                 cql_synthetic: Literal["push_down", "balanced", "skip", "full"] = "push_down",
                 cql_synthetic_weight: float = 1.0, reward_scale: float = 1.0,
                 double_q: bool = True, rollout_epsilon: float = 0.1, layer_norm: bool = False,
                 weight_decay: float = 0.0, compile_losses: bool = False):
        super().__init__(n_agents, obs_dim, state_dim, action_kind, action_size)
        self.save_hyperparameters()
        self.require("discrete")
        if cql_synthetic_weight < 0:
            raise LogoError(f"cql_synthetic_weight must be >= 0 (the synthetic rows' weight in the CQL term); got "
                            f"{cql_synthetic_weight}")
        if cql_temperature <= 0:
            raise LogoError(f"cql_temperature must be > 0 (the log-sum-exp's temperature); got {cql_temperature}")
        self.q_net = AgentSharedMLP(n_agents, obs_dim, action_size, list(hidden_sizes), layer_norm=layer_norm)
        self.mixer = QMixer(n_agents, state_dim, mixer_embed) if mixer == "qmix" else VDNMixer()
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.mixer_target = copy.deepcopy(self.mixer).requires_grad_(False)
        self.val_td = MeanMetric()
        self.val_q = MeanMetric()
        self._compiled_losses = None  # built at the first training step with compile_losses

    # ---- acting -------------------------------------------------------------------------------
    def q_values(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Raw observations [B, N, obs_dim] -> per-agent Q values [B, N, A]."""
        net = self.q_target if target else self.q_net
        return net(self.obs_norm(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
            state: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy legal actions [B, N] int64; ``state`` is unused (decentralised execution)."""
        return greedy_legal(self.q_values(obs), avail_actions)

    @torch.no_grad()
    def rollout_act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
                    state: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Epsilon-greedy legal actions [B, N] for world-model rollouts (``rollout_epsilon`` per agent)."""
        greedy = self.act(obs, avail_actions)
        eps = self.hparams.rollout_epsilon
        if eps <= 0:
            return greedy
        shape = (*greedy.shape, self.action_size)
        random = sample_legal_joint_actions(avail_actions, shape, 1, generator, greedy.device)[:, 0]
        explore = torch.rand(greedy.shape, generator=generator, device=greedy.device) < eps
        return torch.where(explore, random, greedy)

    @torch.no_grad()
    def q_tot(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_tot [B] of joint actions [B, N] at raw obs [B, N, obs_dim] and state [B, state_dim] (online networks,
        in units of ``reward_scale`` times the reward), e.g. a planner's value of the end of a plan."""
        q = self.q_values(obs).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # [B, N]
        return self.mixer(q, self.state_norm(state))

    # ---- learning -----------------------------------------------------------------------------
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-transition [B] TD error, CQL term and Q_tot of the dataset actions (no reduction).

        The ``macql/*`` regions name its parts in ``torch.profiler`` traces (``benchmarks/update_profile.py``).
        """
        hp = self.hparams
        with record_function("macql/q_values"):
            state_n = self.state_norm(batch["state"])
            q = self.q_values(batch["obs"])  # [B, N, A]
            actions = batch["actions"].long()  # [B, N]
            q_chosen = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B, N]
        avail = batch.get("avail_actions")
        if hp.cql_mode == "joint":  # the data's joint action and K sampled ones, mixed in one pass
            with record_function("macql/cql_sampling"):
                samples = sample_legal_joint_actions(avail, tuple(q.shape), hp.cql_samples, device=q.device)
                q_samples = q.gather(-1, samples.transpose(1, 2)).transpose(1, 2)  # [B, K, N]
            with record_function("macql/mixer"):
                q_tot = self.mixer(torch.cat([q_chosen.unsqueeze(1), q_samples], dim=1), state_n)  # [B, 1 + K]
            q_data, q_tot_samples = q_tot[:, 0], q_tot[:, 1:]
        elif hp.cql_mode == "counterfactual":  # the data's joint action and its N * A single-agent deviations
            b, n, a = q.shape
            with record_function("macql/mixer"):
                deviations = counterfactual_joint_actions(q, q_chosen).reshape(b, n * a, n)  # [B, N * A, N]
                q_tot = self.mixer(torch.cat([q_chosen.unsqueeze(1), deviations], dim=1), state_n)  # [B, 1 + N * A]
            q_data, q_tot_deviations = q_tot[:, 0], q_tot[:, 1:].reshape(b, n, a)
        else:
            with record_function("macql/mixer"):
                q_data = self.mixer(q_chosen, state_n)  # [B]
        with torch.no_grad(), record_function("macql/td_target"):
            next_avail = batch.get("next_avail_actions")
            next_q_target = self.q_values(batch["next_obs"], target=True)  # [B, N, A]
            chooser = self.q_values(batch["next_obs"]) if hp.double_q else next_q_target
            next_actions = greedy_legal(chooser, next_avail)  # [B, N]
            next_value = self.mixer_target(next_q_target.gather(-1, next_actions.unsqueeze(-1)).squeeze(-1),
                                           self.state_norm(batch["next_state"]))  # [B]
            target = td_target(hp.reward_scale * batch["rewards"], batch["terminals"], next_value, hp.gamma)
        out = {"td": (q_data - target).square(), "q_data": q_data.detach(), "q_data_attached": q_data,
               "td_bias": (q_data - target).detach()}  # signed: how far above its TD target the data action sits
        temp = hp.cql_temperature
        if hp.cql_mode == "joint":
            out["cql"] = joint_cql_penalty(q_tot_samples, q_data, temp)  # [B]
        elif hp.cql_mode == "counterfactual":
            out["cql"] = counterfactual_cql_penalty(q_tot_deviations, q_data, avail, temp)
        else:
            out["cql"] = local_cql_penalty(q, actions, avail, temp)
        return out

    def _loss_tensors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``losses`` as the tensors the compiled graph returns: td, cql, q_data_attached [B]. Returning ``q_data``
        too (a detached alias of ``q_data_attached``) made AOTAutograd fail (an IndexError in its output-alias
        handling, torch 2.13.0), so the detached copy is made outside the graph."""
        out = self.losses(batch)
        return out["td"], out["cql"], out["q_data_attached"]

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """:meth:`losses` of a training step: eager, or compiled once with ``compile_losses``."""
        if not self.hparams.compile_losses:
            return self.losses(batch)
        if self._compiled_losses is None:
            self._compiled_losses = torch.compile(self._loss_tensors, options={"fallback_random": True})
        td, cql, q_data = self._compiled_losses(batch)
        return {"td": td, "cql": cql, "q_data": q_data.detach(), "q_data_attached": q_data}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.conservative_td_loss(self.training_losses(batch), batch)
        if logs_this_step(self):
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # here, not in on_train_batch_end: a checkpoint saved at the end of this batch must include the update
        super().optimizer_step(*args, **kwargs)
        soft_update(self.q_target, self.q_net, self.hparams.tau)
        soft_update(self.mixer_target, self.mixer, self.hparams.tau)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        parts = self.losses(batch)
        n = len(batch["rewards"])
        self.val_td.update(parts["td"].mean(), n)
        self.val_q.update(parts["q_data"].mean(), n)
        self.log("val/loss", self.val_td, prog_bar=True)
        self.log("val/q_data", self.val_q)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        parts = self.losses(batch)
        self.log("test/loss", parts["td"].mean())
        self.log("test/q_data", parts["q_data"].mean())

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Greedy legal actions for the batch's observations."""
        return self.act(batch["obs"], batch.get("avail_actions"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [*self.q_net.parameters(), *self.mixer.parameters()]
        if self.hparams.weight_decay > 0:
            return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, foreach=True)
        return torch.optim.Adam(params, lr=self.hparams.lr, foreach=True)

