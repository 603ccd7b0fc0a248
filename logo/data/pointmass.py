"""A tiny numpy point-mass task that writes real logo datasets for tests and smoke runs.

It is not a benchmark: the real environments (MPE, MaMuJoCo, SMAX) live in ``logo.envs``.
It exists so that the format, the data module and the trainers can be exercised on a fresh
clone in seconds, with every feature of the format present: N agents move on the plane
towards N landmarks; discrete moves that would leave the arena are illegal (avail_actions);
episodes end by termination (every agent on its landmark) or by truncation (time limit).

Observation of agent i: own position (2), landmarks relative to it (2N), other agents relative
to it (2(N-1)); global state: all positions (2N) and landmarks (2N); team reward: minus the
sum over landmarks of the distance to the nearest agent. The behaviour policy moves each agent
towards its own landmark and takes a uniformly random legal action with probability epsilon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from logo.data.schema import DatasetSpec
from logo.data.writer import DatasetWriter

STEP = 0.1
ARENA = 1.0
REACHED = 0.1
MOVES = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)  # noop, +x, -x, +y, -y


def _observe(pos: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(pos)
    obs = []
    for i in range(n):
        others = np.delete(pos, i, axis=0) - pos[i]
        obs.append(np.concatenate([pos[i], (marks - pos[i]).ravel(), others.ravel()]))
    return np.stack(obs).astype(np.float32), np.concatenate([pos.ravel(), marks.ravel()]).astype(np.float32)


def _avail(pos: np.ndarray) -> np.ndarray:
    nxt = pos[:, None, :] + STEP * MOVES[None]  # [N, 5, 2]
    return (np.abs(nxt) <= ARENA + 1e-6).all(-1)  # [N, 5]


def _reward(pos: np.ndarray, marks: np.ndarray) -> float:
    dist = np.linalg.norm(pos[:, None] - marks[None], axis=-1)  # [N agents, N landmarks]
    return float(-dist.min(0).sum())


def generate_synthetic_dataset(out: str | Path, episodes: int = 200, n_agents: int = 3,
                               action_kind: Literal["discrete", "continuous"] = "discrete",
                               epsilon: float = 0.2, max_steps: int = 25, seed: int = 0,
                               overwrite: bool = False) -> Path:
    """Write a point-mass navigation dataset of ``episodes`` episodes to ``out``; returns the path."""
    rng = np.random.default_rng(seed)
    discrete = action_kind == "discrete"
    spec = DatasetSpec(
        env_family="synthetic", scenario=f"navigation_{n_agents}", n_agents=n_agents, obs_dim=4 * n_agents,
        state_dim=4 * n_agents, action_kind=action_kind, n_actions=len(MOVES) if discrete else None,
        action_dim=None if discrete else 2, action_low=None if discrete else [-1.0, -1.0],
        action_high=None if discrete else [1.0, 1.0], quality=f"epsilon={epsilon}",
        behaviour=f"greedy to own landmark, epsilon={epsilon} uniform random legal action",
        source=f"logo.data.pointmass seed={seed}")
    with DatasetWriter(out, spec=spec, overwrite=overwrite) as writer:
        for _ in range(episodes):
            pos = rng.uniform(-0.8, 0.8, (n_agents, 2)).astype(np.float32)
            marks = rng.uniform(-0.8, 0.8, (n_agents, 2)).astype(np.float32)
            ep: dict[str, list] = {"observations": [], "state": [], "actions": [], "rewards": [],
                                   "avail_actions": []}
            terminated = False
            for _t in range(max_steps):
                obs, state = _observe(pos, marks)
                avail = _avail(pos)
                to_goal = marks - pos  # [N, 2]
                if discrete:
                    scores = MOVES @ to_goal.T  # [5, N]: progress of each move
                    scores = np.where(avail.T, scores, -np.inf)
                    action = scores.argmax(0)
                    for i in np.flatnonzero(rng.random(n_agents) < epsilon):
                        action[i] = rng.choice(np.flatnonzero(avail[i]))
                    delta = STEP * MOVES[action]
                else:
                    action = np.clip(to_goal / STEP, -1.0, 1.0)
                    noisy = rng.random(n_agents) < epsilon
                    action[noisy] = rng.uniform(-1.0, 1.0, (int(noisy.sum()), 2))
                    action = action.astype(np.float32)
                    delta = STEP * action
                pos = np.clip(pos + delta, -ARENA, ARENA).astype(np.float32)
                ep["observations"].append(obs)
                ep["state"].append(state)
                ep["actions"].append(action)
                ep["rewards"].append(_reward(pos, marks))
                ep["avail_actions"].append(avail)
                if (np.linalg.norm(pos - marks, axis=-1) < REACHED).all():
                    terminated = True
                    break
            final_obs, final_state = _observe(pos, marks)
            writer.add_episode(
                observations=np.stack(ep["observations"]), state=np.stack(ep["state"]),
                actions=np.stack(ep["actions"]), rewards=np.array(ep["rewards"], np.float32),
                final_observation=final_obs, final_state=final_state, terminated=terminated,
                avail_actions=np.stack(ep["avail_actions"]) if discrete else None,
                final_avail_actions=_avail(pos) if discrete else None)
    return Path(out)
