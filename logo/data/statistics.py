"""Normalisation statistics of a dataset's training split, copied into every model at ``setup``."""

from __future__ import annotations

import numpy as np
import torch

from logo.data.reader import OfflineDataset, gather_transitions


def compute_statistics(dataset: OfflineDataset, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """Normalisation statistics over the steps ``indices`` (the training split).

    Observations get per-agent, per-feature statistics ``[N, obs_dim]`` (agents may observe
    different things); padded features get mean 0 and std 1; constant features get std 1.
    Besides mean/std of observations, state and reward, it holds their minimum and maximum
    (the data's bounding box, for clipping model rollouts) and mean/std of the one-step changes
    ``o' - o`` and ``s' - s`` (world models predict those); a change that is always zero gets
    std 1e-3 times its feature's std.
    """
    mask = torch.from_numpy(dataset.arrays["obs_mask"])
    # one pass over the split in chunks of steps, gathered like training batches (next values exact at
    # episode ends): float64 sums and running min/max, no full-size temporary copy of the split
    storage = dataset.storage()
    moments = {key: _Moments() for key in ("obs", "state", "reward", "obs_delta", "state_delta")}
    for start in range(0, len(indices), 1 << 16):
        batch = gather_transitions(storage, torch.from_numpy(indices[start:start + (1 << 16)]))
        moments["obs"].update(batch["obs"].numpy())
        moments["state"].update(batch["state"].numpy())
        moments["reward"].update(batch["rewards"].numpy())
        moments["obs_delta"].update((batch["next_obs"] - batch["obs"]).numpy())
        moments["state_delta"].update((batch["next_state"] - batch["state"]).numpy())

    def _masked(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean * mask, torch.where(mask, std, torch.ones_like(std))

    stats: dict[str, torch.Tensor] = {}
    for key in ("obs", "state", "reward"):
        mean, std = moments[key].mean_std()
        stats[f"{key}_mean"], stats[f"{key}_std"] = _masked(mean, std) if key == "obs" else (mean, std)
        stats[f"{key}_min"], stats[f"{key}_max"] = moments[key].low, moments[key].high
    # a feature that never changes gets a tiny change scale (not 1): a model's error on it then stays tiny in
    # the feature's own units instead of being amplified by 1 / feature std
    stats["obs_delta_mean"], stats["obs_delta_std"] = _masked(*moments["obs_delta"].mean_std(1e-3 * stats["obs_std"]))
    stats["state_delta_mean"], stats["state_delta_std"] = moments["state_delta"].mean_std(1e-3 * stats["state_std"])
    spec = dataset.spec
    if not spec.discrete:
        stats["action_low"] = torch.tensor(spec.action_low, dtype=torch.float32)
        stats["action_high"] = torch.tensor(spec.action_high, dtype=torch.float32)
    return stats


class _Moments:
    """Running float64 sum, sum of squares, minimum and maximum over the leading axis of chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.total = self.total_sq = None
        self.low = self.high = None

    def update(self, part: np.ndarray) -> None:
        low, high = torch.as_tensor(part.min(0)), torch.as_tensor(part.max(0))
        part = part.astype(np.float64)
        if self.total is None:
            self.total, self.total_sq, self.low, self.high = part.sum(0), np.square(part).sum(0), low, high
        else:
            self.total += part.sum(0)
            self.total_sq += np.square(part).sum(0)
            self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)
        self.count += len(part)

    def mean_std(self, fallback: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std; std below 1e-6 (a constant feature) is replaced by ``fallback``."""
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.total_sq / self.count - mean ** 2, 0.0))
        std = np.where(std < 1e-6, np.asarray(fallback, np.float64), std)
        return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
