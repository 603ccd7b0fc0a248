"""Online MAPPO for discrete actions: trains behaviour policies for the learned dataset tiers (SMAX).

One actor, shared by the agents (a one-hot agent id appended to each observation), picks each agent's
action from its own observation among its legal actions; a centralised critic values the global state
(MAPPO, Yu et al., 2022). It is a data-collection tool, not an offline MARL method: snapshots at rising
evaluation returns (``logo.online.ReturnSnapshots``) give the ``medium`` behaviour policy, the final
policy the ``expert``, and the journal of played episodes the ``medium-replay`` dataset (``logo tiers``).
The loss pieces live in :mod:`logo.online.ppo_losses`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from logo.dims import linked_dims
from logo.envs.base import TimeStep
from logo.envs.evaluate import EvaluationResult, evaluate_policy
from logo.errors import LogoError, check_fits
from logo.nn import MLP, AgentSharedMLP
from logo.online.behaviour import SampledModulePolicy
from logo.online.events import OnlineEvents
from logo.online.ppo_losses import (
    clipped_policy_loss,
    entropy,
    gae,
    greedy_actions,
    log_probs,
    normalize,
    sample_actions,
    value_loss,
)
from logo.online.rollouts import Rollout, RolloutDataModule
from logo.policy.checkpoint import ActingPolicy


class OnlineMAPPO(OnlineEvents, ActingPolicy, LightningModule):
    """MAPPO with legal-action masks, a parameter-shared actor and a centralised state-value critic.

    Each ``training_step`` is one iteration: the ``RolloutDataModule``'s ``num_envs`` copies each play one
    episode with sampled actions (illegal actions have probability 0 and are never drawn), GAE turns the
    rewards and the critic's values into advantages (a time-limit cut bootstraps from the final state's
    value, a true end does not), and ``epochs`` passes of ``minibatches`` shuffled minibatches minimise the
    clipped surrogate plus ``value_coef`` times the critic loss minus ``entropy_coef`` times the entropy.
    Every ``eval_every`` iterations the policy plays ``eval_episodes`` episodes on fixed seeds, sampling
    from a generator seeded the same way each time, and logs ``eval/return`` and ``eval/win_rate``.

    Optimisation is manual with one Adam over actor and critic, so ``trainer.global_step`` counts gradient
    updates (``epochs * minibatches`` per iteration); the run's length is ``data.total_steps`` env steps.

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked).
        action_kind: must be discrete (linked).
        action_size: number of discrete actions (linked).
        hidden_sizes: widths of the actor's and the critic's hidden layers.
        actor_input: what the shared actor sees besides the agent id: the agent's own observation (``obs``,
            decentralised execution) or also the global state (``obs+state``; a behaviour policy may use it,
            as the scripted experts do).
        lr: Adam learning rate.
        gamma: discount factor.
        gae_lambda: GAE's lambda.
        clip: PPO's ratio clip epsilon.
        value_coef: weight of the critic loss.
        entropy_coef: weight of the entropy bonus.
        epochs: passes over each iteration's samples.
        minibatches: minibatches per pass.
        max_grad_norm: gradient norm clip (0: none).
        anneal_lr: decay the learning rate linearly to 0 over ``data.total_steps`` env steps.
        eval_every: iterations between evaluations.
        eval_episodes: evaluation episodes, played in parallel copies.
        eval_seed: evaluation episode ``i`` is reset with seed ``eval_seed + i`` every time.

    Example (YAML)::

        model:
          class_path: OnlineMAPPO
          init_args: {hidden_sizes: [128, 128], lr: 0.0005}
        data:
          class_path: RolloutDataModule
          init_args: {env: smax, scenario: 3m, num_envs: 64, total_steps: 1000000}
    """

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (128, 128), actor_input: Literal["obs", "obs+state"] = "obs",
                 lr: float = 5e-4, gamma: float = 0.99,
                 gae_lambda: float = 0.95, clip: float = 0.2, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 epochs: int = 4, minibatches: int = 4, max_grad_norm: float = 0.5, anneal_lr: bool = False,
                 eval_every: int = 10,
                 eval_episodes: int = 64, eval_seed: int = 1_000_000):
        super().__init__()
        if action_kind != "discrete":
            raise LogoError("OnlineMAPPO needs discrete actions; use OnlineTD3 for continuous ones")
        for name, value in (("epochs", epochs), ("minibatches", minibatches), ("eval_every", eval_every),
                            ("eval_episodes", eval_episodes)):
            if value < 1:
                raise LogoError(f"model.{name}: expected a positive integer, got {value}")
        if not 0.0 < clip < 1.0:
            raise LogoError(f"model.clip: expected a ratio clip in (0, 1), got {clip}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        if actor_input not in ("obs", "obs+state"):
            raise LogoError(f"model.actor_input: expected 'obs' or 'obs+state', got {actor_input!r}")
        self.with_state = actor_input == "obs+state"
        self.actor = AgentSharedMLP(n_agents, obs_dim + (state_dim if self.with_state else 0), action_size,
                                    list(hidden_sizes))
        self.critic = MLP(state_dim, list(hidden_sizes), 1)
        self.init_events()

    # ---- acting -------------------------------------------------------------------------------

    def logits(self, obs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """obs [..., N, obs_dim] (and state [..., state_dim] for ``obs+state``) -> action logits [..., N, n_actions]."""
        x = obs.to(self.dtype)
        if self.with_state:
            if state is None:
                raise LogoError("OnlineMAPPO with actor_input obs+state acts on the global state too: pass state")
            x = torch.cat([x, state.to(self.dtype).unsqueeze(-2).expand(*x.shape[:-1], state.shape[-1])], -1)
        return self.actor(x)

    def value(self, state: torch.Tensor) -> torch.Tensor:
        """state [..., state_dim] -> V(state) [...]."""
        return self.critic(state.to(self.dtype)).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
            state: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy legal actions [B, N] (the ``ActingPolicy`` contract; ``logo evaluate`` plays these)."""
        return greedy_actions(self.logits(obs, state), avail_actions)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator | None = None,
               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled legal actions [B, N] and their log-probabilities [B, N]."""
        logits = self.logits(obs, state)
        actions = sample_actions(logits, avail, generator)
        return actions, log_probs(logits, avail).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def behave(self, obs: torch.Tensor, avail: torch.Tensor | None, state: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [B, N] as while learning: sampled from the policy (``SampledModulePolicy`` plays these)."""
        return self.sample(obs, avail, generator, state)[0]

    def behaviour_note(self) -> str:
        """How :meth:`behave` acts, in words (the learned tiers' provenance)."""
        return "actions sampled from the policy's distribution over legal actions"

    # ---- training -----------------------------------------------------------------------------

    @property
    def online(self) -> RolloutDataModule:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, RolloutDataModule):
            raise LogoError(f"OnlineMAPPO trains on-policy: use data.class_path RolloutDataModule, got "
                            f"{type(dm).__name__}")
        return dm

    def setup(self, stage: str) -> None:
        if stage == "fit":
            spec = self.online.spec
            check_fits(self.hparams, linked_dims(spec), "OnlineMAPPO", f"{spec.family}/{spec.scenario}",
                       ("model", "environment"))

    def behaviour(self, ts: TimeStep) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sampled actions of the training copies, with the log-probabilities and values kept for the update."""
        obs = torch.as_tensor(ts.obs, device=self.device)  # [B, N, obs_dim]
        avail = torch.as_tensor(ts.avail_actions, device=self.device)  # [B, N, n_actions]
        state = torch.as_tensor(ts.state, device=self.device)  # [B, state_dim]
        actions, logp = self.sample(obs, avail, state=state)
        with torch.no_grad():
            value = self.value(state)  # [B]
        return actions.cpu().numpy(), {"log_prob": logp.cpu().numpy(), "value": value.cpu().numpy()}

    def advantages(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and value targets [T, B] of a rollout (padding steps are cut by ``done``)."""
        hp, device = self.hparams, self.device
        values = torch.as_tensor(rollout.extras["value"], device=device)  # [T, B]
        with torch.no_grad():
            final = self.value(torch.as_tensor(rollout.final_state, device=device))  # [B]
        next_values = torch.cat([values[1:], final[None]])  # [T, B]
        # the step that ends copy b's episode bootstraps from its final state (used only when truncated)
        last = torch.as_tensor(rollout.lengths - 1, device=device)
        next_values[last, torch.arange(values.shape[1], device=device)] = final
        return gae(torch.as_tensor(rollout.rewards, device=device), values, next_values,
                   torch.as_tensor(rollout.terminated, device=device), torch.as_tensor(rollout.done, device=device),
                   hp.gamma, hp.gae_lambda)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PPO losses on one minibatch of M real steps: obs [M, N, O], avail [M, N, A], actions [M, N],
        log_prob [M, N], state [M, S], advantages [M], targets [M]."""
        hp = self.hparams
        logits = self.logits(batch["obs"], batch["state"])  # [M, N, A]
        logp_all = log_probs(logits, batch["avail"])
        logp = logp_all.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)  # [M, N]
        n = logp.shape[-1]
        advantages = normalize(batch["advantages"])[:, None].expand(-1, n)  # one team advantage per agent
        policy, clipped, approx_kl = clipped_policy_loss(logp.reshape(-1), batch["log_prob"].reshape(-1),
                                                         advantages.reshape(-1), hp.clip)
        critic = value_loss(self.value(batch["state"]), batch["targets"])
        ent = entropy(logits, batch["avail"]).mean()
        loss = policy + hp.value_coef * critic - hp.entropy_coef * ent
        return {"loss": loss, "policy_loss": policy.detach(), "value_loss": critic.detach(), "entropy": ent.detach(),
                "clip_fraction": clipped, "approx_kl": approx_kl}

    def training_step(self, batch: int, batch_idx: int) -> None:
        dm, hp = self.online, self.hparams
        rollout = dm.play(self.behaviour)
        advantages, targets = self.advantages(rollout)
        valid = torch.as_tensor(rollout.valid, device=self.device)  # [T, B]

        def flat(x: Any) -> torch.Tensor:
            return torch.as_tensor(x, device=self.device)[valid]  # [T, B, ...] -> [M, ...]

        samples = {"obs": flat(rollout.obs), "avail": flat(rollout.avail), "actions": flat(rollout.actions),
                   "log_prob": flat(rollout.extras["log_prob"]), "state": flat(rollout.state),
                   "advantages": advantages[valid], "targets": targets[valid]}
        opt = self.optimizers()
        if hp.anneal_lr:
            for group in opt.param_groups:
                group["lr"] = hp.lr * max(1.0 - dm.env_steps / dm.total_steps, 0.0)
        size = len(samples["actions"])
        stats: dict[str, list[float]] = {}
        for _ in range(hp.epochs):
            order = torch.randperm(size, device=self.device)
            for idx in order.chunk(hp.minibatches):
                out = self.losses({k: v[idx] for k, v in samples.items()})
                opt.zero_grad()
                self.manual_backward(out["loss"])
                if hp.max_grad_norm > 0:
                    nn.utils.clip_grad_norm_(self.parameters(), hp.max_grad_norm)
                opt.step()
                for k, v in out.items():
                    stats.setdefault(k, []).append(float(v.detach()))
        returns = rollout.returns
        metrics = {f"train/{k}": float(np.mean(v)) for k, v in stats.items()}
        metrics.update({"train/episode_return": float(returns.mean()),
                        "train/episode_length": float(rollout.lengths.mean()), "train/iteration": dm.iterations,
                        "train/lr": opt.param_groups[0]["lr"]})
        if rollout.won is not None:
            metrics["train/win_rate"] = float(rollout.won.mean())
        self.log_event(metrics, dm.env_steps)
        self.log("train/return", float(returns.mean()), prog_bar=True, logger=False, batch_size=1)
        self.log("env_steps", float(dm.env_steps), prog_bar=True, logger=False, batch_size=1)
        finished = dm.env_steps >= dm.total_steps
        if dm.iterations % hp.eval_every == 0 or finished:
            self.evaluate(dm)
        if finished:  # the loader may already have fetched the next index: stop here
            self.trainer.should_stop = True

    def evaluate(self, dm: RolloutDataModule) -> dict[str, float]:
        """Play the sampled policy on the fixed evaluation seeds; logs eval/* and keeps ``last_evaluation``."""
        hp = self.hparams
        started = time.perf_counter()
        if self._eval_env is None:
            self._eval_env = dm.make_env(num_envs=min(hp.eval_episodes, dm.num_envs))
        was_training = self.training
        self.eval()
        try:
            result = evaluate_policy(self._eval_env, SampledModulePolicy(self, self._eval_env.spec), hp.eval_episodes,
                                     seed=hp.eval_seed)
        finally:
            self.train(was_training)
        metrics = evaluation_metrics(result)
        if self._clock is not None:
            metrics["time/env_steps_per_s"] = (dm.env_steps - self._clock[1]) / (started - self._clock[0])
        self.log("eval/return", metrics["eval/return"], prog_bar=True, logger=False, batch_size=1)
        if "eval/win_rate" in metrics:
            self.log("eval/win_rate", metrics["eval/win_rate"], prog_bar=True, logger=False, batch_size=1)
        self.log_event(metrics, dm.env_steps)
        rank_zero_info(f"env step {dm.env_steps} (iteration {dm.iterations}): eval/return {metrics['eval/return']:.3f}"
                       + (f", win rate {metrics['eval/win_rate']:.2f}" if "eval/win_rate" in metrics else ""))
        self.keep_evaluation(metrics, dm.env_steps, dm.iterations, dm.episodes, dm.journal_files)
        self._clock = (started, dm.env_steps)
        return metrics

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, eps=1e-5, foreach=True)


def evaluation_metrics(result: EvaluationResult) -> dict[str, float]:
    """eval/return, eval/return_std, eval/length and (where the env has one) eval/win_rate of an evaluation."""
    metrics = {"eval/return": float(result.returns.mean()), "eval/return_std": float(result.returns.std()),
               "eval/length": float(result.lengths.mean())}
    if result.wins is not None:
        metrics["eval/win_rate"] = float(result.wins.mean())
    return metrics
