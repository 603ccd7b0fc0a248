"""The on-disk dataset format: one zarr v3 group per dataset, time-major over concatenated episodes.

Per-step arrays (T = total steps over all episodes, N agents, E episodes)::

    observations         [T, N, obs_dim]    float32  padded per agent, see obs_mask
    state                [T, state_dim]     float32  global state
    actions              [T, N]             int64    discrete
                         [T, N, action_dim] float32  continuous
    rewards              [T]                float32  team reward
    agent_rewards        [T, N]             float32  optional per-agent rewards
    terminals            [T]                bool     true environment termination (no bootstrap)
    truncations          [T]                bool     time limit / budget cut (bootstrap from final_*)
    avail_actions        [T, N, n_actions]  bool     discrete only: legal actions at step t

Per-episode arrays::

    episode_starts       [E]                int64    index of each episode's first step
    final_observations   [E, N, obs_dim]    float32  observation after the episode's last step
    final_state          [E, state_dim]     float32  state after the episode's last step
    final_avail_actions  [E, N, n_actions]  bool     discrete only

Static arrays::

    obs_mask             [N, obs_dim]       bool     True where agent i's observation has a real feature

The next observation of step t is ``observations[t + 1]`` inside an episode and
``final_observations[e]`` at the last step of episode e, so every transition
(o, s, a, r, o', s', done) is exact at episode ends, for terminations and truncations alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from logo.dims import ActionKind

if TYPE_CHECKING:
    from logo.envs.base import EnvSpec

FORMAT_NAME = "logo-marl-dataset"
FORMAT_VERSION = 1


# name -> (dtype, dims), where dims name each axis; "T" per step, "E" per episode.
PER_STEP = ("observations", "state", "actions", "rewards", "terminals", "truncations")
PER_EPISODE = ("episode_starts", "final_observations", "final_state")
DISCRETE_ONLY = ("avail_actions", "final_avail_actions")
OPTIONAL = ("agent_rewards",)


@dataclass
class DatasetSpec:
    """Everything a dataset's group attributes say about it, except the counts.

    Example:
        >>> spec = DatasetSpec(env_family="mpe", scenario="simple_spread_v3", n_agents=3,
        ...                    obs_dim=18, state_dim=54, action_kind="discrete", n_actions=5)
        >>> spec.action_size
        5
    """

    env_family: str
    scenario: str
    n_agents: int
    obs_dim: int
    state_dim: int
    action_kind: ActionKind
    n_actions: int | None = None  # discrete only
    action_dim: int | None = None  # continuous only
    action_low: list[float] | None = None  # continuous only, one bound per action dimension
    action_high: list[float] | None = None
    quality: str = "unknown"
    behaviour: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = spec_problems(asdict(self))
        if problems:
            raise ValueError("invalid DatasetSpec: " + "; ".join(problems))

    @classmethod
    def from_env(cls, env: EnvSpec, quality: str = "unknown", behaviour: str = "", source: str = "",
                 extra: dict[str, Any] | None = None) -> DatasetSpec:
        """The DatasetSpec of a dataset recorded in the scenario ``env`` describes (an ``EnvSpec``)."""
        return cls(
            env_family=env.family, scenario=env.scenario, n_agents=env.n_agents, obs_dim=env.obs_dim,
            state_dim=env.state_dim, action_kind=env.action_kind,
            n_actions=env.n_actions if env.discrete else None,
            action_dim=None if env.discrete else env.action_dim,
            action_low=None if env.discrete else [float(x) for x in env.action_low],
            action_high=None if env.discrete else [float(x) for x in env.action_high],
            quality=quality, behaviour=behaviour, source=source,
            extra={"env_notes": dict(env.notes), "max_steps": env.max_steps, **(extra or {})})

    @property
    def discrete(self) -> bool:
        return self.action_kind == "discrete"

    @property
    def action_size(self) -> int:
        """Number of discrete actions, or the continuous action dimension."""
        return int(self.n_actions if self.discrete else self.action_dim)  # type: ignore[arg-type]

    def array_shapes(self) -> dict[str, tuple[str | int, ...]]:
        """Expected shape of every array; "T" and "E" stand for the step and episode counts."""
        n, o, s = self.n_agents, self.obs_dim, self.state_dim
        shapes: dict[str, tuple[str | int, ...]] = {
            "observations": ("T", n, o),
            "state": ("T", s),
            "actions": ("T", n) if self.discrete else ("T", n, self.action_dim),  # type: ignore[dict-item]
            "rewards": ("T",),
            "terminals": ("T",),
            "truncations": ("T",),
            "episode_starts": ("E",),
            "final_observations": ("E", n, o),
            "final_state": ("E", s),
            "obs_mask": (n, o),
            "agent_rewards": ("T", n),
        }
        if self.discrete:
            shapes["avail_actions"] = ("T", n, self.n_actions)  # type: ignore[assignment]
            shapes["final_avail_actions"] = ("E", n, self.n_actions)  # type: ignore[assignment]
        return shapes

    def array_dtypes(self) -> dict[str, str]:
        dtypes = {
            "observations": "float32",
            "state": "float32",
            "actions": "int64" if self.discrete else "float32",
            "rewards": "float32",
            "agent_rewards": "float32",
            "terminals": "bool",
            "truncations": "bool",
            "episode_starts": "int64",
            "final_observations": "float32",
            "final_state": "float32",
            "obs_mask": "bool",
        }
        if self.discrete:
            dtypes["avail_actions"] = "bool"
            dtypes["final_avail_actions"] = "bool"
        return dtypes

    def required_arrays(self) -> tuple[str, ...]:
        return PER_STEP + PER_EPISODE + ("obs_mask",) + (DISCRETE_ONLY if self.discrete else ())

    def to_attrs(self) -> dict[str, Any]:
        attrs = asdict(self)
        attrs["format"] = FORMAT_NAME
        attrs["format_version"] = FORMAT_VERSION
        return attrs

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> DatasetSpec:
        """Build from group attributes; raises ValueError naming each bad attribute."""
        problems = spec_problems(attrs)
        if problems:
            raise ValueError("; ".join(problems))
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: attrs[k] for k in names if k in attrs})


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def spec_problems(attrs: dict[str, Any]) -> list[str]:
    """Problems with a dataset's attributes, each naming the attribute and what was expected."""
    problems = []
    for key in ("env_family", "scenario", "action_kind"):
        if not isinstance(attrs.get(key), str) or not attrs.get(key):
            problems.append(f"attribute '{key}': expected a non-empty string, got {attrs.get(key)!r}")
    for key in ("n_agents", "obs_dim", "state_dim"):
        if not _is_int(attrs.get(key)) or attrs[key] < 1:
            problems.append(f"attribute '{key}': expected a positive integer, got {attrs.get(key)!r}")
    kind = attrs.get("action_kind")
    if kind == "discrete":
        if not _is_int(attrs.get("n_actions")) or attrs["n_actions"] < 1:
            problems.append(f"attribute 'n_actions': expected a positive integer for discrete actions, "
                            f"got {attrs.get('n_actions')!r}")
    elif kind == "continuous":
        dim = attrs.get("action_dim")
        if not _is_int(dim) or dim < 1:
            problems.append(f"attribute 'action_dim': expected a positive integer for continuous actions, "
                            f"got {dim!r}")
        else:
            low, high = attrs.get("action_low"), attrs.get("action_high")
            for key, val in (("action_low", low), ("action_high", high)):
                if (not isinstance(val, (list, tuple)) or len(val) != dim
                        or not all(_is_finite_number(v) for v in val)):
                    problems.append(f"attribute '{key}': expected a list of {dim} finite numbers, got {val!r}")
            if not problems and any(lo >= hi for lo, hi in zip(low, high)):
                problems.append(f"attributes 'action_low'/'action_high': expected low < high in every "
                                f"dimension, got {low} and {high}")
    elif kind is not None and isinstance(kind, str):
        problems.append(f"attribute 'action_kind': expected 'discrete' or 'continuous', got {kind!r}")
    version = attrs.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        problems.append(f"attribute 'format_version': this logo reads version {FORMAT_VERSION}, got {version!r}")
    return problems


class LinkedDims:
    """The dims the CLI links from a data module into its model, read from the module's ``spec``.

    Mixed into every logo data module; ``spec`` is a ``DatasetSpec`` (offline data) or an
    ``EnvSpec`` (online training): both name these five fields the same way.
    """

    spec: Any

    @property
    def n_agents(self) -> int:
        return self.spec.n_agents

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def state_dim(self) -> int:
        return self.spec.state_dim

    @property
    def action_kind(self) -> ActionKind:
        return self.spec.action_kind

    @property
    def action_size(self) -> int:
        return self.spec.action_size
