"""The one protocol every environment adapter implements, and the records it exchanges.

Every adapter is batched: it holds ``num_envs`` independent copies of one scenario and steps
them together (a Python loop for MPE and MaMuJoCo, ``jax.vmap`` for SMAX). Agents are always
their own axis; per-agent observations are zero-padded to one ``obs_dim`` and
``EnvSpec.obs_mask`` marks the real features.

Episode contract: ``reset(seeds)`` starts one episode per copy, copy ``b`` seeded by
``seeds[b]`` (same seed and same actions -> the same episode). ``step(actions)`` advances
every copy. Once a copy reports ``terminated`` or ``truncated`` it is *finished*: later steps
ignore its actions and return its final observation again with reward 0 and the same done
flags, until the next ``reset``. Runners therefore step all copies in lockstep and mask
finished ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from logo.dims import ActionKind
from logo.errors import LogoError


class MissingExtraError(LogoError):
    """An environment family was requested whose optional dependency is not installed."""


def require(module: str, extra: str, family: str) -> Any:
    """Import ``module`` or raise a MissingExtraError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"the '{family}' environments need the Python package '{module.split('.')[0]}', which is not "
            f"installed ({exc}); install it with: pip install 'logo[{extra}]'") from exc


@dataclass(frozen=True)
class EnvSpec:
    """Static description of one scenario as logo sees it (the controlled team only).

    Example:
        >>> spec = EnvSpec(family="mpe", scenario="simple_spread_v3", n_agents=3, obs_dim=18, state_dim=54,
        ...                action_kind="discrete", n_actions=5, max_steps=25)
        >>> spec.action_size
        5
    """

    family: str
    scenario: str
    n_agents: int
    obs_dim: int
    state_dim: int
    action_kind: ActionKind
    max_steps: int
    n_actions: int | None = None  # discrete only
    action_dim: int | None = None  # continuous only
    action_low: tuple[float, ...] | None = None  # continuous only, per action dimension
    action_high: tuple[float, ...] | None = None
    obs_mask: np.ndarray | None = field(default=None, compare=False)  # [N, obs_dim] bool; None: all real
    has_win: bool = False  # whether info carries a "won" flag
    agent_names: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. how the team reward is formed

    def __post_init__(self) -> None:
        if self.action_kind == "discrete" and not self.n_actions:
            raise ValueError("EnvSpec: a discrete scenario needs n_actions")
        if self.action_kind == "continuous" and not (self.action_dim and self.action_low and self.action_high):
            raise ValueError("EnvSpec: a continuous scenario needs action_dim, action_low and action_high")
        if self.obs_mask is None:
            object.__setattr__(self, "obs_mask", np.ones((self.n_agents, self.obs_dim), bool))

    @property
    def discrete(self) -> bool:
        return self.action_kind == "discrete"

    @property
    def action_size(self) -> int:
        return int(self.n_actions if self.discrete else self.action_dim)


class TimeStep(NamedTuple):
    """What every copy sees after a reset or a step. B = num_envs, N = agents."""

    obs: np.ndarray  # [B, N, obs_dim] float32, zero-padded
    state: np.ndarray  # [B, state_dim] float32
    reward: np.ndarray  # [B] float32 team reward of the step that led here (0 after reset)
    terminated: np.ndarray  # [B] bool: a true end of the task (death, win, loss)
    truncated: np.ndarray  # [B] bool: cut by the time limit
    avail_actions: np.ndarray | None = None  # [B, N, n_actions] bool, discrete only
    info: dict[str, np.ndarray] = {}  # optional per-copy extras: "won" [B] bool, "agent_rewards" [B, N]

    @property
    def done(self) -> np.ndarray:
        """[B] bool: terminated or truncated."""
        return self.terminated | self.truncated


@runtime_checkable
class MultiAgentEnv(Protocol):
    """A batch of ``num_envs`` copies of one multi-agent scenario (see the module docstring)."""

    spec: EnvSpec
    num_envs: int

    def reset(self, seeds: Sequence[int]) -> TimeStep:
        """Start a new episode in every copy; ``len(seeds) == num_envs``."""
        ...

    def step(self, actions: np.ndarray) -> TimeStep:
        """actions: [B, N] int64 (discrete) or [B, N, action_dim] float32 (continuous)."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class Policy(Protocol):
    """Anything that acts in a MultiAgentEnv: scripted experts, random, noisy wrappers, checkpoints."""

    def act(self, ts: TimeStep) -> np.ndarray:
        """Actions for every copy and agent: [B, N] int64 or [B, N, action_dim] float32."""
        ...

    def seed(self, seed: int) -> None:
        """Reseed any randomness, so that evaluation over fixed seeds repeats exactly."""
        ...


def check_options(family: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Refuse family options outside ``allowed``, naming the unknown ones and the accepted ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LogoError(f"{family} options: unknown {unknown}; expected some of {list(allowed)}")


def check_seeds(seeds: Sequence[int], num_envs: int) -> list[int]:
    """Validate a reset's seeds: one non-negative int per copy."""
    seeds = [int(s) for s in seeds]
    if len(seeds) != num_envs:
        raise ValueError(f"seeds: expected {num_envs} seeds (one per env copy), got {len(seeds)}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds: expected non-negative integers, got {seeds}")
    return seeds


def check_actions(actions: np.ndarray, spec: EnvSpec, num_envs: int) -> np.ndarray:
    """Validate a step's joint action array and return it with the canonical dtype."""
    actions = np.asarray(actions)
    expected = (num_envs, spec.n_agents) if spec.discrete else (num_envs, spec.n_agents, spec.action_dim)
    if actions.shape != expected:
        raise ValueError(f"actions: expected shape {expected} for {spec.family}/{spec.scenario} with "
                         f"{num_envs} copies, got {actions.shape}")
    if spec.discrete:
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions: expected integer action indices, got dtype {actions.dtype}")
        if actions.min() < 0 or actions.max() >= spec.n_actions:
            raise ValueError(f"actions: expected indices in [0, {spec.n_actions}), got "
                             f"[{actions.min()}, {actions.max()}]")
        return actions.astype(np.int64)
    return actions.astype(np.float32)


def pad_obs(per_agent: Sequence[np.ndarray], obs_dim: int) -> np.ndarray:
    """Zero-pad a list of N per-agent vectors of possibly different sizes to [N, obs_dim]."""
    out = np.zeros((len(per_agent), obs_dim), np.float32)
    for i, o in enumerate(per_agent):
        out[i, : len(o)] = o
    return out
