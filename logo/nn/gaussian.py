"""Diagonal Gaussian output heads with learned soft bounds on the log standard deviation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bounded_log_std(raw: torch.Tensor, min_log_std: torch.Tensor, max_log_std: torch.Tensor) -> torch.Tensor:
    """Softly squash ``raw`` into [min_log_std, max_log_std] (PETS/MBPO): smooth, with gradients everywhere."""
    log_std = max_log_std - F.softplus(max_log_std - raw)
    return min_log_std + F.softplus(log_std - min_log_std)


class LogStdBounds(nn.Module):
    """Learned per-feature bounds of a Gaussian head's log-std; ``penalty()`` keeps them from drifting apart.

    Example:
        >>> bounds = LogStdBounds(4)
        >>> bounds(torch.full((2, 4), 10.0)).max() <= 0.5 + 1e-6
        tensor(True)
    """

    def __init__(self, dim: int, init_min: float = -5.0, init_max: float = 0.5):
        super().__init__()
        self.min_log_std = nn.Parameter(torch.full((dim,), init_min))
        self.max_log_std = nn.Parameter(torch.full((dim,), init_max))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return bounded_log_std(raw, self.min_log_std, self.max_log_std)

    def penalty(self) -> torch.Tensor:
        """sum(max - min): the small regulariser PETS adds so the learned bounds stay tight."""
        return (self.max_log_std - self.min_log_std).sum()
