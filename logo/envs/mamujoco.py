"""Multi-agent MuJoCo (gymnasium-robotics ``mamujoco_v1``): continuous control split across agents.

Scenario names join the robot and the agent partition, as the MaMuJoCo papers write them:
``HalfCheetah-2x3`` is ``mamujoco_v1.parallel_env("HalfCheetah", "2x3")``. Agents see their own
joints plus neighbours up to ``agent_obsk`` hops; their observation sizes differ (HalfCheetah 6x1:
9 or 8), so observations are zero-padded and ``spec.obs_mask`` marks real features. The global
state is the robot's full single-agent observation. All agents get the same reward, the
single-agent gym reward, which is the team reward (not summed over agents). Episodes are
truncated at ``max_episode_steps``; Hopper, Walker2d and Ant also terminate when the robot falls.
There is no scripted expert: behaviour policies are trained online (``OnlineTD3``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from logo.envs.base import EnvSpec, TimeStep, check_actions, check_options, check_seeds, pad_obs, require
from logo.errors import LogoError

SCENARIOS = ("HalfCheetah-2x3", "HalfCheetah-6x1", "Hopper-3x1", "Ant-2x4", "Walker2d-2x3")


def parse_scenario(scenario: str) -> tuple[str, str]:
    """``"HalfCheetah-2x3"`` -> ``("HalfCheetah", "2x3")``."""
    robot, sep, conf = scenario.rpartition("-")
    if not sep or not robot or "x" not in conf:
        raise LogoError(f"mamujoco scenario: expected ROBOT-PARTITION such as 'HalfCheetah-2x3' (tested: "
                        f"{', '.join(SCENARIOS)}), got {scenario!r}")
    return robot, conf


class MaMuJoCoEnv:
    """``num_envs`` copies of one MaMuJoCo scenario, stepped in a loop (MuJoCo steps take microseconds).

    Args:
        scenario: ``ROBOT-PARTITION``, e.g. ``HalfCheetah-2x3`` or ``Hopper-3x1``.
        num_envs: number of independent copies.
        agent_obsk: how many graph hops of neighbouring joints each agent observes (MaMuJoCo's k).
        max_episode_steps: time limit; reaching it truncates the episode.
    """

    def __init__(self, scenario: str, num_envs: int = 1, agent_obsk: int = 1, max_episode_steps: int = 1000):
        mamujoco = require("gymnasium_robotics", extra="mamujoco", family="mamujoco").mamujoco_v1
        robot, conf = parse_scenario(scenario)
        if agent_obsk < 0:
            raise LogoError(f"agent_obsk: expected a non-negative number of hops, got {agent_obsk}")
        if max_episode_steps < 1:
            raise LogoError(f"max_episode_steps: expected a positive step limit, got {max_episode_steps}")
        try:
            self._envs = [mamujoco.parallel_env(robot, conf, agent_obsk=agent_obsk,
                                                max_episode_steps=max_episode_steps) for _ in range(num_envs)]
        except Exception as exc:  # gymnasium-robotics raises plain exceptions for unknown robots/partitions
            raise LogoError(f"mamujoco scenario {scenario!r}: gymnasium-robotics cannot build it ({exc}); "
                            f"tested scenarios: {', '.join(SCENARIOS)}") from exc
        self.num_envs = num_envs
        first = self._envs[0]
        self._agents = list(first.possible_agents)
        obs_sizes = [first.observation_space(a).shape[0] for a in self._agents]
        act_spaces = [first.action_space(a) for a in self._agents]
        act_dims = [s.shape[0] for s in act_spaces]
        if len(set(act_dims)) != 1:
            raise LogoError(f"mamujoco scenario {scenario!r}: agents have different action sizes {act_dims}; "
                            "logo needs one action_dim per scenario")
        low, high = act_spaces[0].low, act_spaces[0].high
        if any(not (np.array_equal(s.low, low) and np.array_equal(s.high, high)) for s in act_spaces):
            raise LogoError(f"mamujoco scenario {scenario!r}: agents have different action bounds")
        obs_dim = max(obs_sizes)
        mask = np.zeros((len(self._agents), obs_dim), bool)
        for i, size in enumerate(obs_sizes):
            mask[i, :size] = True
        self.spec = EnvSpec(
            family="mamujoco", scenario=scenario, n_agents=len(self._agents), obs_dim=obs_dim,
            state_dim=int(np.prod(first.single_agent_env.observation_space.shape)),
            action_kind="continuous", action_dim=act_dims[0], action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high), max_steps=max_episode_steps, obs_mask=mask,
            agent_names=tuple(self._agents),
            notes={"team_reward": "the shared single-agent gym reward (identical for all agents)",
                   "agent_obsk": agent_obsk, "robot": robot, "partition": conf,
                   "obs_sizes": obs_sizes})
        self._last: list[TimeStep] = []
        self._finished = np.zeros(num_envs, bool)

    def _observe(self, b: int, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        per_agent = [np.asarray(obs[a], np.float32) for a in self._agents]
        state = np.asarray(self._envs[b].state(), np.float32)
        return pad_obs(per_agent, self.spec.obs_dim), state

    def reset(self, seeds: Sequence[int]) -> TimeStep:
        seeds = check_seeds(seeds, self.num_envs)
        obs, states = [], []
        for b, (env, seed) in enumerate(zip(self._envs, seeds)):
            raw, _ = env.reset(seed=seed)
            o, s = self._observe(b, raw)
            obs.append(o)
            states.append(s)
        self._finished[:] = False
        zeros = np.zeros(self.num_envs, bool)
        ts = TimeStep(obs=np.stack(obs), state=np.stack(states), reward=np.zeros(self.num_envs, np.float32),
                      terminated=zeros, truncated=zeros.copy())
        self._last = [_select(ts, b) for b in range(self.num_envs)]
        return ts

    def step(self, actions: np.ndarray) -> TimeStep:
        if not self._last:
            raise RuntimeError("MaMuJoCoEnv.step called before reset")
        actions = check_actions(actions, self.spec, self.num_envs)
        rows = []
        for b, env in enumerate(self._envs):
            if self._finished[b]:  # frozen: final observation again, reward 0, same flags
                rows.append(self._last[b]._replace(reward=np.float32(0.0)))
                continue
            raw, rewards, terms, truncs, _ = env.step({a: actions[b, i] for i, a in enumerate(self._agents)})
            o, s = self._observe(b, raw)
            terminated = bool(any(terms.values()))
            truncated = bool(any(truncs.values())) and not terminated
            row = TimeStep(obs=o, state=s, reward=np.float32(rewards[self._agents[0]]),
                           terminated=np.bool_(terminated), truncated=np.bool_(truncated))
            self._finished[b] = terminated or truncated
            self._last[b] = row
            rows.append(row)
        return TimeStep(obs=np.stack([r.obs for r in rows]), state=np.stack([r.state for r in rows]),
                        reward=np.array([r.reward for r in rows], np.float32),
                        terminated=np.array([r.terminated for r in rows], bool),
                        truncated=np.array([r.truncated for r in rows], bool))

    def close(self) -> None:
        for env in self._envs:
            env.close()


def _select(ts: TimeStep, b: int) -> TimeStep:
    return TimeStep(obs=ts.obs[b], state=ts.state[b], reward=ts.reward[b], terminated=ts.terminated[b],
                    truncated=ts.truncated[b])


def make(scenario: str, num_envs: int = 1, **options: Any) -> MaMuJoCoEnv:
    """``num_envs`` copies of a MaMuJoCo scenario; options: ``agent_obsk``, ``max_episode_steps``."""
    check_options("mamujoco", options, ["agent_obsk", "max_episode_steps"])
    return MaMuJoCoEnv(scenario, num_envs=num_envs, **options)
