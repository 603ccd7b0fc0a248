"""Online TD3 over the joint action: trains behaviour policies where no scripted expert exists (MaMuJoCo).

One centralised actor maps the global state to every agent's action; twin critics score
(state, joint action). It is a data-collection tool, not an offline MARL method: checkpoints at
increasing ``eval/return`` (``logo.online.ReturnSnapshots``) give the ``medium`` behaviour policy, the
final policy the ``expert``, and the data module's journal of played episodes up to the medium snapshot
``medium-replay`` (``logo tiers``; ``logo.online.ReplayExport`` writes the replay buffer at a fixed return).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from logo.dims import linked_dims
from logo.envs.evaluate import evaluate_policy
from logo.envs.policies import ModulePolicy
from logo.errors import LogoError, check_fits
from logo.nn import MLP, TwinCritic, from_unit_box
from logo.online.datamodule import OnlineEnvDataModule
from logo.online.events import OnlineEvents
from logo.policy.checkpoint import ActingPolicy
from logo.policy.losses import soft_update, td_target

# ---------------------------------------------------------------------------------------------
# Losses and target computation, kept apart from the module so they are tested alone.


def smooth_target_actions(actions: torch.Tensor, noise_std: float, noise_clip: float, low: torch.Tensor,
                          high: torch.Tensor) -> torch.Tensor:
    """TD3 target policy smoothing: add clipped Gaussian noise and clip to the action bounds.

    ``noise_std`` and ``noise_clip`` are fractions of half the action range (TD3's 0.2 and 0.5 for
    actions in [-1, 1]). actions: [B, N, action_dim]; low, high: [action_dim].
    """
    half_range = (high - low) / 2
    noise = (torch.randn_like(actions) * noise_std).clamp(-noise_clip, noise_clip) * half_range
    return torch.clamp(actions + noise, low, high)


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of both critics' mean squared errors to the (fixed) target, all [B]."""
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def actor_loss(q1: torch.Tensor) -> torch.Tensor:
    """Deterministic policy gradient objective: maximise the first critic's value, q1 [B]."""
    return -q1.mean()


# ---------------------------------------------------------------------------------------------


class OnlineTD3(OnlineEvents, ActingPolicy, LightningModule):
    """TD3 (Fujimoto et al., 2018) with a centralised actor over the joint action, trained online.

    Each ``training_step`` is one environment step of the ``OnlineEnvDataModule``'s live copy
    (uniform random actions for the first ``start_steps`` steps, then the actor plus Gaussian
    noise), stored in its replay buffer, followed by ``updates_per_step`` gradient updates. Every
    ``eval_every`` environment steps the deterministic actor plays ``eval_episodes`` episodes on
    fixed seeds in a separate environment and logs ``eval/return``, which checkpoints are selected by; so does
    the last step of the run (``data.total_steps``), where training stops even if ``trainer.max_steps`` is
    larger. ``last_evaluation`` keeps the latest evaluation for ``ReturnSnapshots``.

    Optimisation is manual with one Adam over actor and critics: each update steps it once (critic
    loss, plus the actor loss through a frozen critic every ``policy_delay`` updates), and steps with
    no gradients before learning starts, so ``trainer.global_step`` is always
    ``env steps * updates_per_step`` (``trainer.max_steps`` = total env steps when it is 1).

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked; unused: the actor acts on the global state).
        state_dim: global state size (linked).
        action_kind: must be continuous (linked).
        action_size: per-agent action dimension (linked).
        hidden_sizes: widths of the actor's and each critic's hidden layers.
        lr: Adam learning rate of actor and critics.
        gamma: discount factor.
        tau: Polyak rate of the target networks.
        policy_noise: target smoothing noise std, as a fraction of half the action range.
        noise_clip: clip of the target smoothing noise, same units.
        policy_delay: critic updates per actor (and target) update.
        exploration_noise: Gaussian exploration noise std, as a fraction of half the action range.
        batch_size: transitions per gradient update.
        start_steps: environment steps of uniform random actions before the actor acts and learning starts.
        updates_per_step: gradient updates after each environment step.
        eval_every: environment steps between evaluations.
        eval_episodes: deterministic evaluation episodes, run in parallel copies.
        eval_seed: evaluation episode ``i`` is reset with seed ``eval_seed + i`` every time.
    """

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 hidden_sizes: Sequence[int] = (256, 256), lr: float = 3e-4, gamma: float = 0.99,
                 tau: float = 0.005, policy_noise: float = 0.2, noise_clip: float = 0.5, policy_delay: int = 2,
                 exploration_noise: float = 0.1, batch_size: int = 256, start_steps: int = 10_000,
                 updates_per_step: int = 1, eval_every: int = 5000, eval_episodes: int = 5,
                 eval_seed: int = 1_000_000):
        super().__init__()
        if action_kind != "continuous":
            raise LogoError("OnlineTD3 needs continuous actions; this scenario's actions are discrete")
        for name, value in (("policy_delay", policy_delay), ("batch_size", batch_size),
                            ("updates_per_step", updates_per_step), ("eval_every", eval_every),
                            ("eval_episodes", eval_episodes)):
            if value < 1:
                raise LogoError(f"model.{name}: expected a positive integer, got {value}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.n_agents, self.action_dim = n_agents, action_size
        self.actor = MLP(state_dim, list(hidden_sizes), n_agents * action_size)
        self.critic = TwinCritic(state_dim, n_agents * action_size, list(hidden_sizes))
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("action_low", -torch.ones(action_size))  # [action_dim], set from the env
        self.register_buffer("action_high", torch.ones(action_size))
        self.updates = 0  # gradient updates so far (drives the policy delay)
        self.init_events()

    # ---- acting -------------------------------------------------------------------------------

    def actions_from(self, actor: nn.Module, state: torch.Tensor) -> torch.Tensor:
        """state [B, state_dim] -> joint action [B, N, action_dim] within the bounds (tanh, rescaled)."""
        out = actor(state).view(-1, self.n_agents, self.action_dim)
        return from_unit_box(torch.tanh(out), self.action_low, self.action_high)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
            state: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic joint actions [B, N, action_dim] from the global state [B, state_dim] (obs unused)."""
        if state is None:
            raise LogoError("OnlineTD3 acts on the global state: pass state [B, state_dim]")
        return self.actions_from(self.actor, state.to(self.action_low.dtype))

    @torch.no_grad()
    def behave(self, obs: torch.Tensor, avail: torch.Tensor | None = None, state: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Joint actions [B, N, action_dim] as while learning (after ``start_steps``): the actor's plus Gaussian
        noise of std ``exploration_noise`` x half the action range, clipped to the bounds (noise from ``generator``)."""
        if state is None:
            raise LogoError("OnlineTD3 acts on the global state: pass state [B, state_dim]")
        low, high = self.action_low, self.action_high
        actions = self.actions_from(self.actor, state.to(low.dtype))
        noise = torch.randn(actions.shape, generator=generator, device=self.device, dtype=low.dtype)
        return torch.clamp(actions + noise * self.hparams.exploration_noise * (high - low) / 2, low, high)

    def behaviour_note(self) -> str:
        """How :meth:`behave` acts, in words (the learned tiers' provenance)."""
        return (f"the actor's actions plus Gaussian noise of std {self.hparams.exploration_noise:g} x half the action "
                "range, clipped to the bounds")

    # ---- training -----------------------------------------------------------------------------

    @property
    def online(self) -> OnlineEnvDataModule:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, OnlineEnvDataModule):
            raise LogoError(f"OnlineTD3 trains online: use data.class_path OnlineEnvDataModule, got "
                            f"{type(dm).__name__}")
        return dm

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        spec = self.online.spec
        check_fits(self.hparams, linked_dims(spec, ("n_agents", "state_dim", "action_size")), "OnlineTD3",
                   f"{spec.family}/{spec.scenario}", ("model", "environment"))
        self.action_low.copy_(torch.tensor(spec.action_low))
        self.action_high.copy_(torch.tensor(spec.action_high))

    def explore(self, state: torch.Tensor, env_steps: int) -> torch.Tensor:
        """Behaviour actions [B, N, action_dim]: uniform before ``start_steps``, then actor + clipped noise."""
        low, high = self.action_low, self.action_high
        if env_steps < self.hparams.start_steps:
            shape = (state.shape[0], self.n_agents, self.action_dim)
            return low + torch.rand(shape, device=self.device) * (high - low)
        return self.behave(None, None, state)

    def losses(self, batch: dict[str, torch.Tensor], update_actor: bool) -> dict[str, torch.Tensor]:
        """Critic loss and, if ``update_actor``, the actor loss through a frozen critic (grads reach the actor only)."""
        hp = self.hparams
        state, next_state = batch["state"], batch["next_state"]  # [B, state_dim]
        with torch.no_grad():
            next_actions = smooth_target_actions(self.actions_from(self.actor_target, next_state),
                                                 hp.policy_noise, hp.noise_clip, self.action_low, self.action_high)
            next_q = torch.min(*self.critic_target(next_state, next_actions))  # clipped double Q
            target = td_target(batch["rewards"], batch["terminals"], next_q, hp.gamma)
        q1, q2 = self.critic(state, batch["actions"])
        out = {"critic_loss": critic_loss(q1, q2, target), "q": q1.detach().mean()}
        if update_actor:
            self.critic.requires_grad_(False)
            try:
                q_pi, _ = self.critic(state, self.actions_from(self.actor, state))
                out["actor_loss"] = actor_loss(q_pi)
            finally:
                self.critic.requires_grad_(True)
        return out

    def training_step(self, batch: int, batch_idx: int) -> None:
        dm, hp = self.online, self.hparams
        ts = dm.observe()
        state = torch.as_tensor(ts.state, device=self.device)  # [1, state_dim]
        actions = self.explore(state, dm.env_steps).cpu().numpy()  # [1, N, action_dim]
        episode = dm.step(actions)
        if episode is not None:
            self.log_event({"train/episode_return": episode.ret, "train/episode_length": episode.length},
                           dm.env_steps)
        learning = dm.env_steps >= hp.start_steps and len(dm.buffer) >= hp.batch_size
        opt = self.optimizers()
        for _ in range(hp.updates_per_step):
            opt.zero_grad()
            if learning:
                update_actor = self.updates % hp.policy_delay == 0
                out = self.losses(dm.sample(hp.batch_size, self.device), update_actor)
                self.manual_backward(out["critic_loss"] + out.get("actor_loss", 0.0))
            opt.step()  # a no-op before learning starts; keeps global_step counting env steps
            if learning:
                self.updates += 1
                if update_actor:
                    soft_update(self.actor_target, self.actor, hp.tau)
                    soft_update(self.critic_target, self.critic, hp.tau)
        if learning and dm.env_steps % self.trainer.log_every_n_steps == 0:
            self.log_event({f"train/{k}": v.item() for k, v in out.items()}, dm.env_steps)
        finished = dm.env_steps >= dm.total_steps
        if dm.env_steps % hp.eval_every == 0 or finished:
            self.evaluate(dm)
        if finished:  # a resumed run's loader counts from 0 again: stop at the data module's budget
            self.trainer.should_stop = True

    def evaluate(self, dm: OnlineEnvDataModule) -> float:
        """Play the deterministic actor on the fixed evaluation seeds; logs eval/*, keeps ``last_evaluation`` and
        returns the mean return."""
        hp = self.hparams
        started = time.perf_counter()
        if self._eval_env is None:
            self._eval_env = dm.make_env(num_envs=hp.eval_episodes)
        result = evaluate_policy(self._eval_env, ModulePolicy(self, self._eval_env.spec), hp.eval_episodes,
                                 seed=hp.eval_seed)
        returns = result.returns
        mean = float(returns.mean())
        metrics = {"eval/return": mean, "eval/return_std": float(returns.std()),
                   "eval/length": float(result.lengths.mean())}
        if self._clock is not None:
            # the whole loop (env steps, updates and the last evaluation) since the last evaluation
            metrics["time/env_steps_per_s"] = (dm.env_steps - self._clock[1]) / (started - self._clock[0])
        self.log("eval/return", mean, logger=False, prog_bar=True, batch_size=1)  # for checkpoint callbacks
        self.log_event(metrics, dm.env_steps)
        rank_zero_info(f"env step {dm.env_steps}: eval/return {mean:.1f} +- {returns.std():.1f} "
                       f"over {len(returns)} episodes")
        self.keep_evaluation(metrics, dm.env_steps, dm.env_steps, dm.finished, dm.journal_files)
        self._clock = (started, dm.env_steps)
        return mean

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([*self.actor.parameters(), *self.critic.parameters()], lr=self.hparams.lr,
                                foreach=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["td3_updates"] = self.updates

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.updates = int(checkpoint.get("td3_updates", 0))
