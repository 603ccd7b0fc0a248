"""Model rollouts, free of Lightning: a batched step protocol and an H-step rollout routine.

Any object with ``step(obs, state, actions, avail_actions=None, generator=None) -> StepResult``
can be rolled out (the LOGO world model and both baselines have it); any callable
``policy(obs, avail_actions=..., state=...) -> actions`` can act in it, so logo's policy modules
(``act``), a random policy or a planner all fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Protocol

import torch

PolicyFn = Callable[..., torch.Tensor]


@dataclass
class StepResult:
    """One model step for a batch, in raw (environment) units, on the model's device.

    Attributes:
        next_obs: [B, N, obs_dim] predicted next local observations (padded features are 0).
        next_state: [B, state_dim] predicted next global state.
        reward: [B] predicted team reward.
        done: [B] bool, predicted termination.
        next_avail: [B, N, n_actions] bool predicted legal actions (discrete), else None.
        uncertainty: [B] the model's uncertainty u(s, a) >= 0.
    """

    next_obs: torch.Tensor
    next_state: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    next_avail: torch.Tensor | None
    uncertainty: torch.Tensor


class StepModel(Protocol):
    def step(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
             avail_actions: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> StepResult: ...


@dataclass
class Rollout:
    """Stacked model steps, time-major ``[H, B, ...]``; ``alive[h, b]`` is False once branch b has terminated.

    ``transitions()`` flattens the alive steps into a batch with the keys of
    :func:`logo.data.reader.gather_transitions` plus ``uncertainty``.
    """

    obs: torch.Tensor  # [H, B, N, O]
    state: torch.Tensor  # [H, B, S]
    actions: torch.Tensor  # [H, B, N] or [H, B, N, A]
    rewards: torch.Tensor  # [H, B]
    next_obs: torch.Tensor  # [H, B, N, O]
    next_state: torch.Tensor  # [H, B, S]
    terminals: torch.Tensor  # [H, B] float
    truncations: torch.Tensor  # [H, B] float, 1 at the horizon for branches still alive
    uncertainty: torch.Tensor  # [H, B]
    alive: torch.Tensor  # [H, B] bool
    avail_actions: torch.Tensor | None = None  # [H, B, N, n_actions]
    next_avail_actions: torch.Tensor | None = None

    @property
    def horizon(self) -> int:
        return self.alive.shape[0]

    def transitions(self) -> dict[str, torch.Tensor]:
        """The alive steps as one flat batch [M, ...] (M = alive.sum())."""
        mask = self.alive
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name != "alive":
                out[f.name] = value[mask]
        return out


def rollout(model: StepModel, policy: PolicyFn, start: Mapping[str, torch.Tensor], horizon: int,
            generator: torch.Generator | None = None, stop_uncertainty: float | None = None) -> Rollout:
    """Run ``policy`` in ``model`` for up to ``horizon`` steps from the start transitions.

    Args:
        model: anything with the :class:`StepModel` ``step``.
        policy: ``policy(obs, avail_actions=avail, state=state) -> actions``; it must pick legal actions.
        start: ``obs [B, N, O]``, ``state [B, S]`` and, for discrete actions, ``avail_actions``.
        horizon: maximum number of model steps H >= 1.
        generator: randomness of the model step (ensemble member choice, sampling).
        stop_uncertainty: end a branch at its first step whose u exceeds this multiple of the mean u of the
            first step (taken from the real start states), dropping that step (MOReL-style halting where the
            model is unsure, scale-free across world models). None: branches stop only at terminations.

    A branch stops at its first predicted termination (later steps are marked not alive); the
    loop ends early when every branch has stopped. Raises ValueError if the policy picks an
    action that the current (real or predicted) legal-action mask forbids.
    """
    if horizon < 1:
        raise ValueError(f"horizon: expected at least 1 step, got {horizon}")
    obs, state = start["obs"], start["state"]
    avail = start.get("avail_actions")
    alive = torch.ones(len(state), dtype=torch.bool, device=state.device)
    threshold = None
    steps: list[dict[str, torch.Tensor | None]] = []
    for h in range(horizon):
        with torch.no_grad():
            actions = policy(obs, avail_actions=avail, state=state)
            if avail is not None:
                legal = avail.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).all(-1)  # [B]
                if not bool((legal | ~alive).all()):
                    raise ValueError(f"rollout step {h}: the policy chose actions the legal-action mask forbids")
            out = model.step(obs, state, actions, avail, generator=generator)
        if stop_uncertainty is not None:
            if threshold is None:
                threshold = stop_uncertainty * out.uncertainty.mean()
            alive = alive & (out.uncertainty <= threshold)
        last = h == horizon - 1
        steps.append({
            "obs": obs, "state": state, "actions": actions, "rewards": out.reward, "next_obs": out.next_obs,
            "next_state": out.next_state, "terminals": out.done.float(),
            "truncations": (~out.done).float() if last else torch.zeros_like(out.reward),
            "uncertainty": out.uncertainty, "alive": alive,
            "avail_actions": avail, "next_avail_actions": out.next_avail,
        })
        alive = alive & ~out.done
        if last or not bool(alive.any()):
            break
        obs, state, avail = out.next_obs, out.next_state, out.next_avail
    stacked = {k: (torch.stack([s[k] for s in steps]) if steps[0][k] is not None else None) for k in steps[0]}
    return Rollout(**stacked)


class UniformPolicy:
    """Uniformly random actions as a rollout policy: legal ones (discrete) or within bounds (continuous).

    Args:
        n_agents: number of agents.
        action_size: number of discrete actions, or the continuous action dimension.
        discrete: discrete or continuous actions.
        low, high: continuous action bounds [action_dim] (ignored for discrete actions).
        generator: source of randomness, on the device the rollout runs on.
    """

    def __init__(self, n_agents: int, action_size: int, discrete: bool, low: torch.Tensor | None = None,
                 high: torch.Tensor | None = None, generator: torch.Generator | None = None):
        self.n_agents, self.action_size, self.discrete = n_agents, action_size, discrete
        self.low, self.high, self.generator = low, high, generator

    def __call__(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
                 state: torch.Tensor | None = None) -> torch.Tensor:
        b = len(obs)
        shape = (b, self.n_agents, self.action_size)
        scores = torch.rand(shape, generator=self.generator, device=obs.device)
        if self.discrete:
            if avail_actions is not None:
                scores = scores + avail_actions.float()  # legal entries score in [1, 2)
            return scores.argmax(-1)
        return self.low + (self.high - self.low) * scores
