"""Diagonal Gaussian output heads with learned soft bounds on the log standard deviation, and tanh-Gaussian sampling."""

from __future__ import annotations

import math

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


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, generator: torch.Generator | None = None,
                         deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample of ``tanh(u)``, ``u ~ Normal(mean, exp(log_std))`` per agent and action dim.

    Args:
        mean: [..., N, A] (typically [B, N, A]).
        log_std: [..., N, A].
        generator: draws the noise, for reproducible rollouts; the global RNG when None.
        deterministic: return ``tanh(mean)`` (the mode of u) and its log density instead of a sample.

    Returns:
        The action [..., N, A] in (-1, 1) and its log-probability [...], summed over agents and action
        dims, with the change of variables ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``
        (stable for large ``|u|``).
    """
    if deterministic:
        noise = torch.zeros_like(mean)
    else:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    u = mean + log_std.exp() * noise
    log_normal = -0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)  # [..., N, A]
    log_det = 2 * (math.log(2.0) - u - F.softplus(-2 * u))
    return torch.tanh(u), (log_normal - log_det).sum((-2, -1))
