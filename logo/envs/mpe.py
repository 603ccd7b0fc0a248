"""MPE adapter: the ``mpe2`` PettingZoo parallel environments behind logo's batched protocol.

Three scenarios, each with a controlled cooperative team (the only agents in obs, actions and rewards):

- ``simple_spread_v3``: all ``n_agents`` agents cover as many landmarks (mpe2's ``N``).
- ``simple_tag_v3``: the three predators (mpe2's ``adversary_*``), as in OMAR's predator-prey. The prey
  (``agent_0``) is driven inside the adapter by a fixed, deterministic escape script.
- ``simple_world_comm_v3``: ``leadadversary_0`` and ``adversary_0..2``. The two good agents are scripted
  inside the adapter (flee the nearest visible adversary, otherwise go to the nearest food; deterministic).

Team reward: the sum of the controlled agents' mpe2 rewards (``info["agent_rewards"]`` keeps them apart).
MPE episodes end only by the time limit: ``truncated`` at ``max_cycles`` steps, ``terminated`` False.

Actions follow mpe2 (``SimpleEnv._set_action``). Discrete movement: 0 no-op, 1 left (-x), 2 right (+x),
3 down (-y), 4 up (+y). The world_comm leader's Discrete(20) action is ``move + 5 * message`` (message in
0..3); the other agents' legal range is 0..4, marked by ``avail_actions``. Continuous actions are in
[0, 1]: force ``x = a[2] - a[1]``, ``y = a[4] - a[3]`` (``a[0]`` is unused by mpe2); the leader's
``a[5:9]`` is its message. The adversaries' Box(5) actions are padded to the leader's 9 dimensions and
their last 4 entries are ignored. Out-of-range continuous actions are clipped, as mpe2 does.

Example:
    >>> env = make("simple_spread_v3", num_envs=2)  # doctest: +SKIP
    >>> ts = env.reset(seeds=[0, 1])  # doctest: +SKIP
    >>> ts = env.step(scripted_policy(env).act(ts))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from logo.envs.base import EnvSpec, TimeStep, check_actions, check_seeds, pad_obs, require
from logo.errors import LogoError

SCENARIOS = ("simple_spread_v3", "simple_tag_v3", "simple_world_comm_v3")

# mpe2 physics (mpe2/_mpe_utils/core.py): v' = (1 - damping) v + dt * accel * u, then |v'| <= max_speed.
_DT = 0.1
_DECAY = 0.75  # 1 - world.damping
# force direction of each discrete movement action
_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
# (accel, max_speed) of each role, from the scenario files; accel None in mpe2 means 5.0
_SPREAD_AGENT = (5.0, None)
_SPREAD_SEPARATION = 0.32  # two agent radii (0.15 each) plus a margin: closer agents collide
_PREDATOR = (3.0, 1.0)  # simple_tag adversaries and all world_comm adversaries
_PREY = (4.0, 1.3)  # simple_tag and world_comm good agents


def _controlled(scenario: str, name: str) -> bool:
    if scenario == "simple_spread_v3":
        return True
    return name.startswith(("adversary_", "leadadversary_"))


def make(scenario: str, num_envs: int = 1, continuous_actions: bool = False, max_cycles: int = 25,
         n_agents: int | None = None, **unknown: Any) -> MPEEnv:
    """Make ``num_envs`` copies of an MPE scenario (see the module docstring for the teams).

    Args:
        scenario: one of ``SCENARIOS`` (the mpe2 name).
        num_envs: number of independent copies stepped together.
        continuous_actions: mpe2's continuous Box(0, 1) action variant instead of the discrete one.
        max_cycles: episode length (steps) after which every episode is truncated.
        n_agents: simple_spread_v3 only: number of agents and landmarks (mpe2's ``N``, default 3).
    """
    if unknown:
        raise LogoError(f"mpe options: unknown option(s) {sorted(unknown)}; expected continuous_actions (bool), "
                        "max_cycles (int) and, for simple_spread_v3, n_agents (int)")
    if scenario not in SCENARIOS:
        raise LogoError(f"mpe scenario: expected one of {list(SCENARIOS)}, got {scenario!r}")
    if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
        raise LogoError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
    if not isinstance(continuous_actions, (bool, np.bool_)):
        raise LogoError(f"continuous_actions: expected a bool, got {continuous_actions!r}")
    if not isinstance(max_cycles, (int, np.integer)) or isinstance(max_cycles, bool) or max_cycles < 1:
        raise LogoError(f"max_cycles: expected an integer >= 1 (episode length), got {max_cycles!r}")
    if n_agents is not None and scenario != "simple_spread_v3":
        raise LogoError(f"n_agents: only simple_spread_v3 takes it; {scenario} has a fixed team")
    if scenario == "simple_spread_v3":
        n_agents = 3 if n_agents is None else n_agents
        if not isinstance(n_agents, (int, np.integer)) or isinstance(n_agents, bool) or n_agents < 1:
            raise LogoError(f"n_agents: expected an integer >= 1 (agents and landmarks), got {n_agents!r}")
    require("mpe2", extra="mpe", family="mpe")
    return MPEEnv(scenario, int(num_envs), bool(continuous_actions), int(max_cycles), n_agents)


class MPEEnv:
    """``num_envs`` copies of one mpe2 parallel environment, stepped in a Python loop.

    Args:
        scenario: one of ``SCENARIOS``.
        num_envs: number of independent copies.
        continuous_actions: continuous (Box) instead of discrete actions.
        max_cycles: episode length.
        n_agents: simple_spread_v3's ``N`` (None for the other scenarios).
    """

    def __init__(self, scenario: str, num_envs: int, continuous_actions: bool, max_cycles: int,
                 n_agents: int | None = None):
        module = require(f"mpe2.{scenario}", extra="mpe", family="mpe")
        kwargs: dict[str, Any] = {"continuous_actions": continuous_actions, "max_cycles": max_cycles}
        if n_agents is not None:
            kwargs["N"] = n_agents
        self.num_envs = num_envs
        self._envs = [module.parallel_env(**kwargs) for _ in range(num_envs)]
        env = self._envs[0]
        self._team = [a for a in env.possible_agents if _controlled(scenario, a)]
        self._others = [a for a in env.possible_agents if not _controlled(scenario, a)]
        self._all = list(env.possible_agents)
        self._continuous = continuous_actions
        obs_sizes = [env.observation_space(a).shape[0] for a in self._team]
        spaces = [env.action_space(a) for a in self._team]
        obs_dim = max(obs_sizes)
        obs_mask = np.zeros((len(self._team), obs_dim), bool)
        for i, size in enumerate(obs_sizes):
            obs_mask[i, :size] = True
        notes: dict[str, Any] = {
            "team_reward": "sum of controlled agents' rewards",
            "options": {"continuous_actions": continuous_actions, "max_cycles": max_cycles,
                        **({"n_agents": n_agents} if n_agents is not None else {})},
            "controlled_agents": list(self._team),
            "scripted_agents": {name: _OPPONENT_SCRIPTS[scenario][1] for name in self._others},
        }
        if scenario == "simple_spread_v3":
            notes["local_ratio"] = 0.5  # mpe2 default: reward = 0.5 * global (landmarks) + 0.5 * own collisions
        if continuous_actions:
            self._act_sizes = np.array([s.shape[0] for s in spaces])
            action_dim = int(self._act_sizes.max())
            low, high = np.zeros(action_dim, np.float32), np.zeros(action_dim, np.float32)
            for s in spaces:  # padded dimensions take the bounds of the agents that have them
                low[: s.shape[0]], high[: s.shape[0]] = s.low, s.high
            if len(set(self._act_sizes.tolist())) > 1:
                notes["action_padding"] = "continuous actions padded to the largest agent's size; extra entries ignored"
            kind: dict[str, Any] = {"action_kind": "continuous", "action_dim": action_dim,
                                    "action_low": tuple(float(x) for x in low),
                                    "action_high": tuple(float(x) for x in high)}
            self._low, self._high = low, high
        else:
            self._act_sizes = np.array([s.n for s in spaces])
            kind = {"action_kind": "discrete", "n_actions": int(self._act_sizes.max())}
            self._avail = np.arange(kind["n_actions"])[None, :] < self._act_sizes[:, None]  # [N, n_actions]
        self.spec = EnvSpec(family="mpe", scenario=scenario, n_agents=len(self._team), obs_dim=obs_dim,
                            state_dim=int(env.state_space.shape[0]), max_steps=max_cycles, obs_mask=obs_mask,
                            has_win=False, agent_names=tuple(self._team), notes=notes, **kind)
        self._script = _OPPONENT_SCRIPTS[scenario][0]
        b, n = num_envs, len(self._team)
        self._obs = np.zeros((b, n, obs_dim), np.float32)  # [B, N, obs_dim]
        self._state = np.zeros((b, self.spec.state_dim), np.float32)  # [B, state_dim]
        self._terminated = np.zeros(b, bool)
        self._truncated = np.zeros(b, bool)
        self._other_obs: list[np.ndarray] = [np.zeros((len(self._others), 0), np.float32)] * b  # scripted agents'
        self._started = False

    def reset(self, seeds: Sequence[int]) -> TimeStep:
        seeds = check_seeds(seeds, self.num_envs)
        for b, (env, seed) in enumerate(zip(self._envs, seeds)):
            obs, _ = env.reset(seed=seed)
            self._record(b, obs)
        self._terminated[:] = False
        self._truncated[:] = False
        self._started = True
        zeros = np.zeros((self.num_envs, self.spec.n_agents), np.float32)
        return self._timestep(np.zeros(self.num_envs, np.float32), zeros)

    def step(self, actions: np.ndarray) -> TimeStep:
        if not self._started:
            raise RuntimeError("MPEEnv.step: call reset(seeds) first")
        actions = check_actions(actions, self.spec, self.num_envs)
        if self._continuous:
            if not np.isfinite(actions).all():
                raise ValueError("actions: expected finite continuous actions, got NaN or inf")
            actions = np.clip(actions, self._low, self._high)
        else:
            illegal = actions >= self._act_sizes[None, :]
            if illegal.any():
                b, i = np.argwhere(illegal)[0]
                raise ValueError(f"actions: agent {self._team[i]} has {self._act_sizes[i]} actions, got action "
                                 f"{actions[b, i]} in env copy {b}")
        agent_rewards = np.zeros((self.num_envs, self.spec.n_agents), np.float32)
        for b, env in enumerate(self._envs):
            if self._terminated[b] or self._truncated[b]:
                continue  # finished copies are frozen until the next reset
            joint = {}
            for i, name in enumerate(self._team):
                joint[name] = actions[b, i, : self._act_sizes[i]] if self._continuous else int(actions[b, i])
            for name, act in zip(self._others, self._script(self._other_obs[b], self._continuous)):
                joint[name] = act
            obs, rewards, terminations, truncations, _ = env.step(joint)
            self._record(b, obs)
            agent_rewards[b] = [rewards[name] for name in self._team]
            self._terminated[b] = any(terminations.values())
            self._truncated[b] = any(truncations.values()) and not self._terminated[b]
        return self._timestep(agent_rewards.sum(1, dtype=np.float32), agent_rewards)

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []

    def _record(self, b: int, obs: dict[str, np.ndarray]) -> None:
        self._obs[b] = pad_obs([obs[name] for name in self._team], self.spec.obs_dim)
        # mpe2's env.state() is exactly this concatenation; rebuilding it from obs saves recomputing every
        # observation (the costliest part of a world_comm step)
        self._state[b] = np.concatenate([obs[name] for name in self._all])
        if self._others:
            self._other_obs[b] = np.stack([obs[name] for name in self._others]).astype(np.float64)

    def _timestep(self, reward: np.ndarray, agent_rewards: np.ndarray) -> TimeStep:
        avail = None if self._continuous else np.broadcast_to(self._avail, (self.num_envs, *self._avail.shape)).copy()
        return TimeStep(obs=self._obs.copy(), state=self._state.copy(), reward=reward.astype(np.float32),
                        terminated=self._terminated.copy(), truncated=self._truncated.copy(),
                        avail_actions=avail, info={"agent_rewards": agent_rewards})


# ----------------------------------------------------------------------------------------------------------
# Control: turn a desired velocity into an mpe2 action, using mpe2's own dynamics.


def _velocity_actions(vel: np.ndarray, desired: np.ndarray, accel: float, continuous: bool) -> np.ndarray:
    """Actions whose next velocity comes closest to ``desired``: [...] int64 (discrete) or [..., 5] float32.

    vel, desired: [..., 2]. Discrete: the best of the five movement actions. Continuous: the exact force,
    clipped to mpe2's per-axis range [-1, 1].
    """
    if continuous:
        u = np.clip((desired - _DECAY * vel) / (_DT * accel), -1.0, 1.0)  # [..., 2]
        zero = np.zeros(u.shape[:-1])
        return np.stack([zero, np.maximum(-u[..., 0], 0), np.maximum(u[..., 0], 0),
                         np.maximum(-u[..., 1], 0), np.maximum(u[..., 1], 0)], -1).astype(np.float32)
    nxt = _DECAY * vel[..., None, :] + _DT * accel * _MOVES  # [..., 5, 2]
    return np.linalg.norm(nxt - desired[..., None, :], axis=-1).argmin(-1).astype(np.int64)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm > 1e-9, v / np.maximum(norm, 1e-9), 0.0)


def _arrive_velocity(rel: np.ndarray, vel: np.ndarray, accel: float, gain: float = 0.8) -> np.ndarray:
    """Desired velocity that brings an agent to rest at the relative position ``rel`` ([..., 2]).

    Position moves by the current velocity before the action acts (mpe2 integrates position first), so aim
    from there, close ``gain`` of the remaining gap per step, and cap the speed at what can still be braked.
    """
    gap = rel - vel * _DT
    dist = np.linalg.norm(gap, axis=-1, keepdims=True)
    brake_speed = np.sqrt(2.0 * accel * dist)  # v^2 = 2 a d
    return _unit(gap) * np.minimum(gain * dist / _DT, brake_speed)


def _flee_direction(pos: np.ndarray, threats: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Unit escape direction: away from visible threats (inverse-square weighted), pulled back toward the
    arena centre as the agent nears the edge. pos [2], threats [K, 2] relative positions, visible [K] bool."""
    away = np.zeros(2)
    for rel, seen in zip(threats, visible):
        if seen:
            away -= rel / max(float(rel @ rel), 1e-4)
    away = _unit(away)
    edge = max(float(np.abs(pos).max()) - 0.5, 0.0) / 0.4  # 0 inside |x|,|y| < 0.5, 1 at the border 0.9
    return _unit(away - 2.0 * edge * _unit(pos))


# ----------------------------------------------------------------------------------------------------------
# Scripted opponents inside the adapter: deterministic functions of their own mpe2 observations.


def _no_opponents(obs: np.ndarray, continuous: bool) -> list:
    return []


def _tag_prey(obs: np.ndarray, continuous: bool) -> list:
    """simple_tag prey; obs [1, 14] = vel, pos, 2 obstacles, 3 predators (relative positions)."""
    actions = []
    for o in obs:
        threats = o[8:14].reshape(3, 2)
        direction = _flee_direction(o[2:4], threats, np.ones(3, bool))
        actions.append(_velocity_actions(o[0:2], direction * _PREY[1], _PREY[0], continuous))
    return actions


def _world_comm_prey(obs: np.ndarray, continuous: bool) -> list:
    """world_comm good agents; obs [2, 28] = vel, pos, obstacle, 2 food, 2 forests, leader, 3 adversaries,
    other good agent (relative, [0, 0] when hidden by a forest), in-forest flags, other good agent's vel."""
    actions = []
    for o in obs:
        threats = o[14:22].reshape(4, 2)
        visible = np.abs(threats).sum(-1) > 0
        dists = np.where(visible, np.linalg.norm(threats, axis=-1), np.inf)
        if dists.min() < 0.5:
            desired = _flee_direction(o[2:4], threats, visible) * _PREY[1]
        else:
            food = o[6:10].reshape(2, 2)
            nearest = food[np.linalg.norm(food, axis=-1).argmin()]
            desired = _arrive_velocity(nearest, o[0:2], _PREY[0])
        actions.append(_velocity_actions(o[0:2], desired, _PREY[0], continuous))
    return actions


_OPPONENT_SCRIPTS = {
    "simple_spread_v3": (_no_opponents, ""),
    "simple_tag_v3": (_tag_prey, "flees the predators (inverse-square), pulled back from the arena edge"),
    "simple_world_comm_v3": (_world_comm_prey, "flees visible adversaries within 0.5, else goes to the nearest food"),
}


# ----------------------------------------------------------------------------------------------------------
# Scripted experts for the controlled team: act from ts.obs only.


def _assign(cost: np.ndarray, perms: np.ndarray | None) -> np.ndarray:
    """Landmark index per agent minimising the total cost ([N, N]); exhaustive when ``perms`` is given."""
    n = cost.shape[0]
    if perms is not None:
        return perms[cost[np.arange(n), perms].sum(1).argmin()]
    out = np.full(n, -1)
    cost = cost.copy()
    for _ in range(n):  # greedy: closest remaining (agent, landmark) pair first
        i, j = np.unravel_index(cost.argmin(), cost.shape)
        out[i] = j
        cost[i, :] = np.inf
        cost[:, j] = np.inf
    return out


def _separate(points: np.ndarray, min_dist: float, sweeps: int = 4) -> np.ndarray:
    """Push apart targets closer than ``min_dist`` ([B, N, 2]), symmetrically, so agents parked on two nearby
    landmarks sit just apart instead of colliding (mpe2 pushes overlapping agents apart every step)."""
    points = points.copy()
    n = points.shape[1]
    for _ in range(sweeps):
        for i in range(n):
            for j in range(i + 1, n):
                diff = points[:, i] - points[:, j]  # [B, 2]
                dist = np.linalg.norm(diff, axis=-1, keepdims=True)
                direction = np.where(dist > 1e-6, diff / np.maximum(dist, 1e-6), [1.0, 0.0])
                push = np.maximum(min_dist - dist, 0.0) / 2 * direction
                points[:, i] += push
                points[:, j] -= push
    return points


class _Expert:
    """Deterministic scripted team; ``seed`` exists for the Policy protocol and changes nothing."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        self.spec = spec
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self._seed = seed

    def _format(self, moves: np.ndarray) -> np.ndarray:
        """Pad continuous [B, N, 5] moves to the team's action_dim; discrete [B, N] passes through."""
        if self.spec.discrete or moves.shape[-1] == self.spec.action_dim:
            return moves
        out = np.zeros((*moves.shape[:2], self.spec.action_dim), np.float32)
        out[..., :5] = moves
        return out


class SpreadExpert(_Expert):
    """simple_spread: the agent-landmark assignment of least total squared distance (exhaustive for N <= 6,
    greedy above), recomputed every step; each agent steers to rest on its landmark, and targets closer than
    two agent radii are pushed apart so parked agents do not collide.
    obs = vel, pos, N landmarks, N-1 agents (relative positions), comm."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        super().__init__(spec, seed)
        n = spec.n_agents
        self._perms = np.array(list(itertools.permutations(range(n)))) if n <= 6 else None

    def act(self, ts: TimeStep) -> np.ndarray:
        n = self.spec.n_agents
        obs = ts.obs.astype(np.float64)
        vel = obs[..., 0:2]  # [B, N, 2]
        landmarks = obs[..., 4:4 + 2 * n].reshape(*obs.shape[:2], n, 2)  # [B, N agents, N landmarks, 2]
        cost = np.square(landmarks).sum(-1)  # [B, N, N] squared distances: fewer assignment switches en route
        pos = obs[..., 2:4]
        goal = np.stack([landmarks[b, np.arange(n), _assign(cost[b], self._perms)] for b in range(len(obs))]) + pos
        goal = _separate(goal, _SPREAD_SEPARATION)  # [B, N, 2] absolute targets
        desired = _arrive_velocity(goal - pos, vel, _SPREAD_AGENT[0])
        return self._format(_velocity_actions(vel, desired, _SPREAD_AGENT[0], not self.spec.discrete))


def _chase_velocity(rel: np.ndarray, target_vel: np.ndarray, max_speed: float) -> np.ndarray:
    """Full speed toward where the target will be (lead by its velocity for the time to close)."""
    lead = np.minimum(np.linalg.norm(rel, axis=-1, keepdims=True) / max_speed, 1.0)
    return _unit(rel + target_vel * lead) * max_speed


class TagExpert(_Expert):
    """simple_tag predators: each chases the prey, intercepting along its velocity.
    obs = vel, pos, 2 obstacles, 2 other predators, prey (relative positions), prey vel."""

    def act(self, ts: TimeStep) -> np.ndarray:
        obs = ts.obs.astype(np.float64)
        vel = obs[..., 0:2]
        desired = _chase_velocity(obs[..., 12:14], obs[..., 14:16], _PREDATOR[1])
        return self._format(_velocity_actions(vel, desired, _PREDATOR[0], not self.spec.discrete))


class WorldCommExpert(_Expert):
    """simple_world_comm adversaries and leader: chase the nearest visible good agent; with none visible
    (hidden in a forest), go to the nearest forest the agent is not in. The leader always sends message 0.
    obs = vel, pos, obstacle, 2 food, 2 forests, 4 other adversaries and 2 good agents (relative, [0, 0]
    when hidden), good agents' vel, in-forest flags, leader's message."""

    def act(self, ts: TimeStep) -> np.ndarray:
        obs = ts.obs.astype(np.float64)
        vel = obs[..., 0:2]  # [B, N, 2]
        prey = obs[..., 20:24].reshape(*obs.shape[:2], 2, 2)  # [B, N, 2, 2]
        prey_vel = obs[..., 24:28].reshape(*obs.shape[:2], 2, 2)
        visible = np.abs(prey).sum(-1) > 0  # [B, N, 2]
        dist = np.where(visible, np.linalg.norm(prey, axis=-1), np.inf)
        k = dist.argmin(-1)[..., None, None]  # nearest visible prey
        chase = _chase_velocity(np.take_along_axis(prey, k, -2)[..., 0, :],
                                np.take_along_axis(prey_vel, k, -2)[..., 0, :], _PREDATOR[1])
        forests = obs[..., 10:14].reshape(*obs.shape[:2], 2, 2)
        outside = obs[..., 28:30] < 0  # [B, N, 2]: not inside forest f
        forest_dist = np.where(outside, np.linalg.norm(forests, axis=-1), np.inf)
        f = forest_dist.argmin(-1)[..., None, None]
        search = _arrive_velocity(np.take_along_axis(forests, f, -2)[..., 0, :], vel, _PREDATOR[0])
        desired = np.where(visible.any(-1, keepdims=True), chase, search)
        moves = _velocity_actions(vel, desired, _PREDATOR[0], not self.spec.discrete)
        if self.spec.discrete:
            return moves  # leader: move + 5 * message, message 0
        out = self._format(moves)
        out[:, 0, 5] = 1.0  # leader's message: one-hot 0
        return out


_EXPERTS = {"simple_spread_v3": SpreadExpert, "simple_tag_v3": TagExpert, "simple_world_comm_v3": WorldCommExpert}


def scripted_policy(env: Any, seed: int = 0) -> _Expert:
    """The scripted expert team for an MPE env made by ``make`` (deterministic; ``seed`` is accepted only
    for the Policy protocol)."""
    scenario = env.spec.scenario
    if env.spec.family != "mpe" or scenario not in _EXPERTS:
        raise LogoError(f"mpe scripted_policy: expected an env of one of {list(SCENARIOS)}, "
                        f"got {env.spec.family}/{scenario}")
    return _EXPERTS[scenario](env.spec, seed=seed)
