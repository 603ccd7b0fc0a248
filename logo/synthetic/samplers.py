"""Which stored synthetic transitions a batch draws: LOGO's uncertainty weighting and its ablations.

Sampling modes (one typed option group, :class:`SamplingOptions`):

* ``weighted`` (LOGO): priority ``P = clip(C - u, low, high)``, a transition is drawn with
  probability proportional to ``exp(P / temperature)``. With ``relative_uncertainty`` u is first
  divided by its mean over the buffer, so the defaults work for any world model's u scale
  (LOGO's state-space distance, an ensemble's disagreement, an aleatoric std).
* ``uniform``: every buffered transition equally likely (ablation: no weighting).
* ``penalty``: uniform draws with MOPO's reward penalty ``r - penalty * u`` (raw u); the penalty is
  applied by the buffer to the drawn rows, the sampler is the uniform one.

Weighted draws are inverse-CDF lookups: the cumulative sum of the weights is recomputed once
whenever the storage changes (after each rollout round), and each batch is one ``searchsorted``
of ``n`` uniforms into it, O(n log M) for a buffer of M transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from logo.errors import LogoError

SamplingMode = Literal["weighted", "uniform", "penalty"]


@dataclass
class SamplingOptions:
    """How synthetic transitions are drawn from the buffer (``data.synthetic.sampling`` in YAML).

    Args:
        mode: ``weighted`` (LOGO: proportional to exp(clip(C - u, low, high) / temperature)), ``uniform``
            or ``penalty`` (uniform, reward r - penalty * u).
        priority_center: C in the priority clip(C - u, low, high).
        priority_low: lower clip bound of the priority.
        priority_high: upper clip bound of the priority.
        temperature: draw weights are exp(priority / temperature); large values approach uniform draws.
        relative_uncertainty: divide u by its buffer mean before the priority (scale-free across world models).
        penalty: lambda of the ``penalty`` mode's reward r - lambda * u.
    """

    mode: SamplingMode = "weighted"
    priority_center: float = 1.0
    priority_low: float = -4.0
    priority_high: float = 1.0
    temperature: float = 1.0
    relative_uncertainty: bool = True
    penalty: float = 1.0

    def __post_init__(self) -> None:  # the one place these options are checked
        if self.mode not in ("weighted", "uniform", "penalty"):
            raise LogoError(f"data.synthetic.sampling.mode: expected weighted, uniform or penalty, got {self.mode!r}")
        if self.priority_low > self.priority_high:
            raise LogoError(f"data.synthetic.sampling.priority_low ({self.priority_low}) must not exceed "
                            f"data.synthetic.sampling.priority_high ({self.priority_high})")
        if self.temperature <= 0:
            raise LogoError(f"data.synthetic.sampling.temperature: expected a positive value, got {self.temperature}")


class UniformSampler:
    """Every filled slot equally likely."""

    def weights(self, u: torch.Tensor) -> torch.Tensor:
        """Unnormalised draw weights of the filled slots [M], given their uncertainty ``u [M]``."""
        return torch.ones_like(u)

    def refresh(self, u: torch.Tensor) -> None:
        """Nothing to rebuild."""

    def invalidate(self) -> None:
        """Nothing to mark stale."""

    def sample(self, u: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` slot indices drawn with replacement from the ``len(u)`` filled slots."""
        return torch.randint(len(u), (n,), generator=generator, device=u.device)


class UncertaintyWeightedSampler:
    """LOGO's draw: slot i with probability proportional to ``exp(clip(C - u_i, low, high) / temperature)``.

    Args:
        center, low, high, temperature, relative_uncertainty: see :class:`SamplingOptions`.
    """

    def __init__(self, center: float = 1.0, low: float = -4.0, high: float = 1.0, temperature: float = 1.0,
                 relative_uncertainty: bool = True):
        self.center, self.low, self.high, self.temperature = center, low, high, temperature
        self.relative_uncertainty = relative_uncertainty
        self._cdf: torch.Tensor | None = None

    def weights(self, u: torch.Tensor) -> torch.Tensor:
        """Unnormalised draw weights of the filled slots [M], given their uncertainty ``u [M]``."""
        u = u.float()
        if self.relative_uncertainty:
            u = u / u.mean().clamp_min(1e-8)
        priority = (self.center - u).clamp(self.low, self.high)
        # subtract the largest exponent: the same distribution, no overflow for small temperatures
        exponent = priority / self.temperature
        return torch.exp(exponent - exponent.max())

    def refresh(self, u: torch.Tensor) -> None:
        """Rebuild the cumulative weights the draws search (the storage changed)."""
        self._cdf = torch.cumsum(self.weights(u).double(), 0) if len(u) else None

    def invalidate(self) -> None:
        """Mark the cumulative weights stale: they are rebuilt at the next draw."""
        self._cdf = None

    def sample(self, u: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` slot indices by inverse-CDF lookup into the cumulative weights."""
        if self._cdf is None:
            self.refresh(u)
        draws = torch.rand(n, generator=generator, device=u.device, dtype=torch.float64) * self._cdf[-1]
        return torch.searchsorted(self._cdf, draws, right=True).clamp_(max=len(u) - 1)


def make_sampler(options: SamplingOptions) -> UniformSampler | UncertaintyWeightedSampler:
    """The sampler of ``options.mode`` (``penalty`` draws uniformly)."""
    if options.mode == "weighted":
        return UncertaintyWeightedSampler(options.priority_center, options.priority_low, options.priority_high,
                                          options.temperature, options.relative_uncertainty)
    return UniformSampler()
