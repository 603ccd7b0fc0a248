"""A preallocated numpy replay buffer for online training that can be written out as a logo dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logo.data.schema import DatasetSpec
from logo.data.writer import DatasetWriter
from logo.errors import LogoError


@dataclass(frozen=True)
class EpisodeRecord:
    """Where one finished episode lies in the buffer's stream of transitions."""

    start: int  # index of its first transition among all transitions ever added
    length: int
    terminated: bool  # True: a true end (no bootstrap); False: truncated by the time limit
    seed: int  # the reset seed it was played from
    ret: float  # undiscounted team return


class ReplayBuffer:
    """FIFO ring of single-copy transitions (o, s, a, r, o', s', terminated, truncated) plus episode bounds.

    Arrays are allocated once (``np.zeros`` pages are only touched when written). Once full, the
    oldest transitions are overwritten; :meth:`complete_episodes` lists only episodes still whole.

    Args:
        capacity: maximum number of transitions held.
        spec: the dataset spec of the environment (dims, action kind).

    Example:
        >>> buf = ReplayBuffer(1000, DatasetSpec.from_env(env.spec))  # doctest: +SKIP
        >>> buf.add(obs, state, actions, reward, next_obs, next_state, terminated, truncated, seed=0)  # doctest: +SKIP
    """

    def __init__(self, capacity: int, spec: DatasetSpec):
        if capacity < 1:
            raise LogoError(f"buffer capacity: expected a positive number of transitions, got {capacity}")
        self.capacity = int(capacity)
        self.spec = spec
        n, o, s = spec.n_agents, spec.obs_dim, spec.state_dim
        action_shape = (n,) if spec.discrete else (n, spec.action_dim)
        c = self.capacity
        self.obs = np.zeros((c, n, o), np.float32)  # [C, N, obs_dim]
        self.state = np.zeros((c, s), np.float32)  # [C, state_dim]
        self.actions = np.zeros((c, *action_shape), np.int64 if spec.discrete else np.float32)
        self.rewards = np.zeros(c, np.float32)  # [C]
        self.next_obs = np.zeros((c, n, o), np.float32)
        self.next_state = np.zeros((c, s), np.float32)
        self.terminated = np.zeros(c, bool)  # [C] true end at this step: no bootstrap
        self.truncated = np.zeros(c, bool)  # [C] time limit at this step: bootstrap from next_*
        if spec.discrete:
            self.avail = np.zeros((c, n, spec.n_actions), bool)
            self.next_avail = np.zeros((c, n, spec.n_actions), bool)
        self.added = 0  # transitions ever added
        self.episodes: list[EpisodeRecord] = []
        self._episode_start = 0
        self._episode_return = 0.0

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(self, obs: np.ndarray, state: np.ndarray, actions: np.ndarray, reward: float, next_obs: np.ndarray,
            next_state: np.ndarray, terminated: bool, truncated: bool, seed: int,
            avail: np.ndarray | None = None, next_avail: np.ndarray | None = None) -> EpisodeRecord | None:
        """Store one transition of the current episode; returns its record when this step ends it.

        Shapes are one copy's: obs [N, obs_dim], state [state_dim], actions [N] or [N, action_dim].
        ``seed`` is the reset seed of the episode the transition belongs to.
        """
        i = self.added % self.capacity
        self.obs[i], self.state[i], self.actions[i], self.rewards[i] = obs, state, actions, reward
        self.next_obs[i], self.next_state[i] = next_obs, next_state
        self.terminated[i], self.truncated[i] = terminated, truncated and not terminated
        if self.spec.discrete:
            self.avail[i], self.next_avail[i] = avail, next_avail
        self.added += 1
        self._episode_return += float(reward)
        if not (terminated or truncated):
            return None
        record = EpisodeRecord(start=self._episode_start, length=self.added - self._episode_start,
                               terminated=bool(terminated), seed=int(seed), ret=self._episode_return)
        self.episodes.append(record)
        self._episode_start = self.added
        self._episode_return = 0.0
        return record

    def add_episode(self, arrays: dict[str, np.ndarray], seed: int) -> EpisodeRecord:
        """Store one whole episode given as a journal holds it (``obs`` [T, N, obs_dim], ``state`` [T, state_dim],
        ``actions``, ``rewards`` [T], ``final_obs`` [N, obs_dim], ``final_state`` [state_dim], ``terminated``, and
        ``avail`` / ``final_avail`` for discrete actions); returns its record."""
        obs, state, length = arrays["obs"], arrays["state"], len(arrays["rewards"])
        next_obs = np.concatenate([obs[1:], arrays["final_obs"][None]])  # [T, N, obs_dim]
        next_state = np.concatenate([state[1:], arrays["final_state"][None]])
        avail = arrays.get("avail")
        next_avail = None if avail is None else np.concatenate([avail[1:], arrays["final_avail"][None]])
        terminated = bool(arrays["terminated"])
        record = None
        for t in range(length):
            last = t == length - 1
            record = self.add(obs[t], state[t], arrays["actions"][t], float(arrays["rewards"][t]), next_obs[t],
                              next_state[t], terminated and last, last and not terminated, seed=seed,
                              avail=None if avail is None else avail[t],
                              next_avail=None if next_avail is None else next_avail[t])
        return record

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn uniformly with replacement: state, actions, rewards,
        next_state, terminals (bool; and obs, next_obs; avail, next_avail for discrete actions)."""
        if len(self) == 0:
            raise RuntimeError("ReplayBuffer.sample: the buffer is empty")
        idx = rng.integers(0, len(self), batch_size)
        batch = {"obs": self.obs[idx], "state": self.state[idx], "actions": self.actions[idx],
                 "rewards": self.rewards[idx], "next_obs": self.next_obs[idx], "next_state": self.next_state[idx],
                 "terminals": self.terminated[idx]}
        if self.spec.discrete:
            batch["avail"], batch["next_avail"] = self.avail[idx], self.next_avail[idx]
        return batch

    def complete_episodes(self) -> list[EpisodeRecord]:
        """Finished episodes whose every transition is still in the buffer, oldest first."""
        oldest = self.added - len(self)
        return [e for e in self.episodes if e.start >= oldest]

    def episode_arrays(self, record: EpisodeRecord) -> dict[str, Any]:
        """Keyword arguments of ``DatasetWriter.add_episode`` for one complete episode."""
        idx = np.arange(record.start, record.start + record.length) % self.capacity
        last = idx[-1]
        arrays: dict[str, Any] = {
            "observations": self.obs[idx], "state": self.state[idx], "actions": self.actions[idx],
            "rewards": self.rewards[idx], "final_observation": self.next_obs[last],
            "final_state": self.next_state[last], "terminated": record.terminated}
        if self.spec.discrete:
            arrays["avail_actions"], arrays["final_avail_actions"] = self.avail[idx], self.next_avail[last]
        return arrays

    def write_dataset(self, path: str | Path, spec: DatasetSpec, obs_mask: np.ndarray | None = None,
                      overwrite: bool = False, extra_attrs: dict[str, Any] | None = None) -> Path:
        """Write every complete episode, oldest first, as a logo zarr dataset at ``path``; returns the path."""
        episodes = self.complete_episodes()
        if not episodes:
            raise LogoError(f"{path}: the replay buffer holds no complete episode yet; nothing to write")
        writer = DatasetWriter(path, spec=spec, overwrite=overwrite)
        try:
            if obs_mask is not None:
                writer.set_obs_mask(obs_mask)
            for record in episodes:
                writer.add_episode(**self.episode_arrays(record))
        except BaseException:
            writer.abort()
            raise
        return writer.close(extra_attrs=extra_attrs)
