"""Load a dataset into memory and gather exact transitions from it.

Random minibatch reads straight from on-disk zarr are about 1000x slower than from memory,
so the whole dataset is read once (chunk by chunk, decompressed in parallel by zarr) and all
sampling happens on in-memory tensors. Next observations are not stored twice: they are
gathered from ``observations[t + 1]`` or, at an episode's last step, ``final_observations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from logo.data.schema import DatasetSpec
from logo.data.validate import content_problems, open_dataset, read_arrays, read_hint
from logo.envs.episodes import discounted_rtg
from logo.errors import DatasetError

Storage = dict[str, torch.Tensor]


@dataclass
class OfflineDataset:
    """A whole dataset in memory as numpy arrays, with its spec and attributes.

    Example:
        >>> data = OfflineDataset.load("spread.zarr")  # doctest: +SKIP
        >>> batch = gather_transitions(data.storage(), torch.arange(4))  # doctest: +SKIP
    """

    path: str
    spec: DatasetSpec
    attrs: dict
    arrays: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: str | Path, validate: bool = True) -> OfflineDataset:
        """Read and (by default) validate the dataset at ``path``; raises DatasetError naming each problem."""
        group, spec = open_dataset(path)
        arrays, problems = read_arrays(group)
        if problems:
            raise DatasetError(str(path), problems, read_hint(path))
        if validate:
            problems = content_problems(spec, arrays)
            if problems:
                raise DatasetError(str(path), problems, read_hint(path))
        return cls(path=str(path), spec=spec, attrs=dict(group.attrs), arrays=arrays)

    @property
    def n_transitions(self) -> int:
        return len(self.arrays["rewards"])

    @property
    def n_episodes(self) -> int:
        return len(self.arrays["episode_starts"])

    def episode_bounds(self) -> np.ndarray:
        """[E + 1] step index where each episode starts, followed by T."""
        return np.append(self.arrays["episode_starts"], self.n_transitions)

    def episode_ids(self) -> np.ndarray:
        """[T] episode index of every step."""
        lengths = np.diff(self.episode_bounds())
        return np.repeat(np.arange(self.n_episodes), lengths)

    def episode_returns(self) -> np.ndarray:
        """[E] undiscounted team return of every episode."""
        return np.add.reduceat(self.arrays["rewards"].astype(np.float64), self.arrays["episode_starts"])

    def returns_to_go(self, gamma: float) -> np.ndarray:
        """[T] float32 discounted return from each step to the end of its episode, ``sum_k gamma^k r_{t+k}``.

        Nothing is bootstrapped past a truncation: it is what the data shows, the yardstick a critic's
        Q of the data's actions is compared with (``train/rtg_real``), not a target.
        """
        rewards = self.arrays["rewards"].astype(np.float64)
        out = np.empty_like(rewards)
        bounds = self.episode_bounds()
        for start, end in zip(bounds[:-1], bounds[1:]):
            out[start:end] = discounted_rtg(rewards[start:end], gamma)
        return out.astype(np.float32)

    def steps_of(self, episodes: np.ndarray) -> np.ndarray:
        """Step indices belonging to the given episodes, in order."""
        return np.flatnonzero(np.isin(self.episode_ids(), episodes)).astype(np.int64)

    def storage(self) -> Storage:
        """Tensors (sharing memory with the numpy arrays) from which transitions are gathered."""
        t = self.n_transitions
        episode_id = self.episode_ids()
        is_last = np.zeros(t, bool)
        is_last[self.episode_bounds()[1:] - 1] = True
        out = {name: torch.from_numpy(arr) for name, arr in self.arrays.items()}
        out["episode_id"] = torch.from_numpy(episode_id.astype(np.int64))
        out["is_last"] = torch.from_numpy(is_last)
        return out


def gather_transitions(storage: Storage, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exact transitions at step indices ``idx`` [B], on the storage's device.

    Returns ``obs [B, N, O]``, ``state [B, S]``, ``actions [B, N]`` or ``[B, N, A]``,
    ``rewards [B]``, ``next_obs [B, N, O]``, ``next_state [B, S]``, ``terminals [B]`` (float,
    1 where the environment terminated: no bootstrap), ``truncations [B]`` (float), and for
    discrete data ``avail_actions`` / ``next_avail_actions [B, N, n_actions]`` (bool).
    """
    last = storage["is_last"][idx]  # [B]
    nxt = (idx + 1).clamp(max=len(storage["rewards"]) - 1)  # inside an episode: t + 1
    ep = storage["episode_id"][idx]  # [B]

    def _next(step_key: str, final_key: str) -> torch.Tensor:
        inside, final = storage[step_key][nxt], storage[final_key][ep]
        shape = (-1,) + (1,) * (inside.dim() - 1)
        return torch.where(last.view(shape), final, inside)

    batch = {
        "obs": storage["observations"][idx],
        "state": storage["state"][idx],
        "actions": storage["actions"][idx],
        "rewards": storage["rewards"][idx],
        "next_obs": _next("observations", "final_observations"),
        "next_state": _next("state", "final_state"),
        "terminals": storage["terminals"][idx].float(),
        "truncations": storage["truncations"][idx].float(),
    }
    if "avail_actions" in storage:
        batch["avail_actions"] = storage["avail_actions"][idx]
        batch["next_avail_actions"] = _next("avail_actions", "final_avail_actions")
    return batch
