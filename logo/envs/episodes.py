"""Run a policy in a batched environment, episode by episode, for collection and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from logo.envs.base import MultiAgentEnv, Policy


def episode_seed(seed: int, k: int, *stream: int) -> int:
    """Env reset seed of episode ``k`` of a run seeded ``seed``: hashed, so nearby runs don't share episodes.

    ``stream`` separates uses of the same ``seed`` (``logo collect`` passes its own tag; online training
    passes none), and neither meets the small consecutive seeds of evaluation (``evaluation_seeds``).
    """
    return int(np.random.SeedSequence([seed, k, *stream]).generate_state(1)[0])


def discounted_rtg(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """[L] float64 ``G_t = sum_{j >= t} gamma^(j - t) r_j`` of one episode's rewards [L], nothing bootstrapped after
    its last step (the data's yardstick, ``DatasetReader.returns_to_go``, and the evaluations' ``rtg_policy``)."""
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


@dataclass
class Episode:
    """One finished episode of L steps in one env copy."""

    seed: int
    observations: np.ndarray | None  # [L, N, obs_dim] (None when not recorded)
    state: np.ndarray | None  # [L, state_dim]
    actions: np.ndarray | None  # [L, N] or [L, N, action_dim]
    rewards: np.ndarray  # [L]
    final_observation: np.ndarray | None  # [N, obs_dim]
    final_state: np.ndarray | None  # [state_dim]
    terminated: bool
    avail_actions: np.ndarray | None = None  # [L, N, n_actions]
    final_avail_actions: np.ndarray | None = None  # [N, n_actions]
    agent_rewards: np.ndarray | None = None  # [L, N]
    won: bool | None = None

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        """Undiscounted team return."""
        return float(self.rewards.sum(dtype=np.float64))

    def writer_kwargs(self) -> dict[str, np.ndarray | bool | None]:
        """Arguments of ``DatasetWriter.add_episode``."""
        if self.observations is None:
            raise ValueError("this episode was run with record=False; it has no arrays to write")
        return {"observations": self.observations, "state": self.state, "actions": self.actions,
                "rewards": self.rewards, "final_observation": self.final_observation,
                "final_state": self.final_state, "terminated": self.terminated,
                "avail_actions": self.avail_actions, "final_avail_actions": self.final_avail_actions,
                "agent_rewards": self.agent_rewards}


def run_episodes(env: MultiAgentEnv, policy: Policy, seeds: list[int], record: bool = True,
                 on_step: Callable[[int], None] | None = None) -> Iterator[Episode]:
    """Play one episode per seed, ``env.num_envs`` at a time, and yield them in seed order.

    Episode ``k`` runs in a copy reset with ``seeds[k]``. The policy is not reseeded here (the caller
    seeds it once), so the same seeds, policy seed and ``num_envs`` give the same episodes. A last,
    partial batch still steps every copy (the spare copies replay the batch's last seed) and drops the
    spares. ``on_step(n)`` is told how many live transitions each step produced (for progress bars).
    """
    batch = env.num_envs
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start:start + batch])
        live_count = len(chunk)
        chunk += [chunk[-1]] * (batch - live_count)
        yield from _run_batch(env, policy, chunk, live_count, record, on_step)


def _run_batch(env: MultiAgentEnv, policy: Policy, seeds: list[int], live_count: int, record: bool,
               on_step: Callable[[int], None] | None) -> Iterator[Episode]:
    ts = env.reset(seeds)
    batch = len(seeds)
    running = np.ones(batch, bool)
    running[live_count:] = False  # spare copies: stepped but never recorded
    lengths = np.zeros(batch, np.int64)
    steps: list[tuple] = []  # per step: (obs, state, avail, actions, rewards, agent_rewards)
    finals: dict[int, tuple] = {}
    won = np.zeros(batch, bool)
    while running.any():
        actions = policy.act(ts)
        nxt = env.step(actions)
        agent_rewards = nxt.info.get("agent_rewards")
        if record:
            steps.append((ts.obs, ts.state, ts.avail_actions, actions, nxt.reward, agent_rewards))
        else:
            steps.append((None, None, None, None, nxt.reward, None))
        lengths += running
        if on_step is not None:
            on_step(int(running.sum()))
        newly_done = running & nxt.done
        for b in np.flatnonzero(newly_done):
            finals[b] = (nxt.obs[b], nxt.state[b], None if nxt.avail_actions is None else nxt.avail_actions[b],
                         bool(nxt.terminated[b]))
            if "won" in nxt.info:
                won[b] = bool(nxt.info["won"][b])
        running &= ~nxt.done
        ts = nxt
    has_win = "won" in ts.info or env.spec.has_win
    for b in range(live_count):
        length = int(lengths[b])

        def column(i: int, b: int = b, length: int = length) -> np.ndarray | None:
            if steps[0][i] is None:
                return None
            return np.stack([s[i][b] for s in steps[:length]])

        obs_f, state_f, avail_f, terminated = finals[b]
        yield Episode(seed=seeds[b], observations=column(0), state=column(1), actions=column(3),
                      rewards=column(4).astype(np.float32), final_observation=obs_f if record else None,
                      final_state=state_f if record else None, terminated=terminated,
                      avail_actions=column(2), final_avail_actions=avail_f if record else None,
                      agent_rewards=column(5), won=bool(won[b]) if has_win else None)
