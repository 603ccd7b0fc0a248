"""An on-device ring buffer of world-model transitions with LOGO's uncertainty-aware sampling.

Sampling modes (one config switch, ``sampling``):

* ``weighted`` (LOGO): priority ``P = clip(C - u, low, high)``, a transition is drawn with
  probability proportional to ``exp(P / temperature)``. With ``relative_uncertainty`` u is first
  divided by its mean over the buffer, so the defaults work for any world model's u scale
  (LOGO's state-space distance, an ensemble's disagreement, an aleatoric std).
* ``uniform``: every buffered transition equally likely (ablation: no weighting).
* ``penalty``: uniform draws with MOPO's reward penalty ``r - penalty * u`` (raw u).

Weighted draws are inverse-CDF lookups: the cumulative sum of the weights is recomputed once
whenever the buffer changes (after each rollout round), and each batch is one ``searchsorted``
of ``n`` uniforms into it, O(n log M) for a buffer of M transitions.
"""

from __future__ import annotations

from typing import Literal

import torch

from logo.dims import Batch

SamplingMode = Literal["weighted", "uniform", "penalty", "none"]


class SyntheticBuffer:
    """The last ``capacity`` model transitions (ring buffer), sampled by uncertainty.

    Args:
        capacity: transitions kept; the oldest are overwritten first.
        mode: ``weighted``, ``uniform`` or ``penalty`` (see the module docstring).
        center: C of the priority ``clip(C - u, low, high)``.
        low: lower clip bound of the priority.
        high: upper clip bound of the priority.
        temperature: weights are ``exp(P / temperature)``; large values approach uniform draws.
        penalty: MOPO's lambda in ``r - lambda * u`` (``penalty`` mode only).
        relative_uncertainty: divide u by its buffer mean before computing priorities.
        generator: source of the draws (on the buffer's device).

    Example:
        >>> buf = SyntheticBuffer(capacity=1000)
        >>> buf.add({"rewards": torch.zeros(3), "uncertainty": torch.tensor([0.1, 1.0, 5.0])})
        >>> buf.probabilities().round(decimals=3)
        tensor([0.5770, 0.3710, 0.0520])
    """

    def __init__(self, capacity: int, mode: SamplingMode = "weighted", center: float = 1.0, low: float = -4.0,
                 high: float = 1.0, temperature: float = 1.0, penalty: float = 1.0,
                 relative_uncertainty: bool = True, generator: torch.Generator | None = None):
        if capacity < 1:
            raise ValueError(f"capacity: expected at least 1 transition, got {capacity}")
        if mode not in ("weighted", "uniform", "penalty"):
            raise ValueError(f"mode: expected weighted, uniform or penalty, got {mode!r}")
        if low > high:
            raise ValueError(f"priority clip: low ({low}) must not exceed high ({high})")
        if temperature <= 0:
            raise ValueError(f"temperature: expected a positive value, got {temperature}")
        self.capacity, self.mode = capacity, mode
        self.center, self.low, self.high, self.temperature = center, low, high, temperature
        self.penalty, self.relative_uncertainty = penalty, relative_uncertainty
        self.generator = generator
        self.data: Batch = {}
        self.size = 0  # filled slots
        self.cursor = 0  # next slot to write
        self.added = 0  # transitions ever added
        self._cdf: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device | None:
        return self.data["uncertainty"].device if self.data else None

    def add(self, transitions: Batch) -> None:
        """Append a batch of transitions ``{key: [M, ...]}`` (with ``uncertainty [M]``), overwriting the oldest."""
        if "uncertainty" not in transitions:
            raise KeyError("synthetic transitions need an 'uncertainty' entry")
        m = len(transitions["uncertainty"])
        if m == 0:
            return
        if not self.data:
            self.data = {k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype, device=v.device)
                         for k, v in transitions.items()}
        if set(transitions) != set(self.data):
            raise KeyError(f"synthetic transitions: expected keys {sorted(self.data)}, got {sorted(transitions)}")
        if m > self.capacity:  # only the newest fit
            transitions = {k: v[-self.capacity:] for k, v in transitions.items()}
            m = self.capacity
        slots = (self.cursor + torch.arange(m, device=self.device)) % self.capacity
        for key, value in transitions.items():
            self.data[key][slots] = value.to(self.data[key].dtype)
        self.cursor = (self.cursor + m) % self.capacity
        self.size = min(self.size + m, self.capacity)
        self.added += m
        self._cdf = None

    def uncertainty(self) -> torch.Tensor:
        """u of the filled slots [M]."""
        return self.data["uncertainty"][:self.size] if self.data else torch.empty(0)

    def weights(self) -> torch.Tensor:
        """Unnormalised draw weights of the filled slots [M] (all ones unless ``weighted``)."""
        u = self.uncertainty().float()
        if self.mode != "weighted":
            return torch.ones_like(u)
        if self.relative_uncertainty:
            u = u / u.mean().clamp_min(1e-8)
        priority = (self.center - u).clamp(self.low, self.high)
        # subtract the largest exponent: the same distribution, no overflow for small temperatures
        exponent = priority / self.temperature
        return torch.exp(exponent - exponent.max())

    def probabilities(self) -> torch.Tensor:
        """Draw probability of each filled slot [M]."""
        w = self.weights().double()
        return (w / w.sum()).float()

    def effective_sample_size(self) -> float:
        """Kish's effective sample size of the draw weights as a fraction of the buffer: (sum w)^2 / (M sum w^2)."""
        w = self.weights().double()
        if len(w) == 0:
            return 0.0
        return float(w.sum() ** 2 / (len(w) * w.square().sum()))

    def refresh(self) -> None:
        """Rebuild the cumulative weights the weighted draws search (done lazily after every ``add``)."""
        self._cdf = torch.cumsum(self.weights().double(), 0) if self.mode == "weighted" and self.size else None

    def _indices(self, n: int) -> torch.Tensor:
        device = self.device
        if self.mode != "weighted":
            return torch.randint(self.size, (n,), generator=self.generator, device=device)
        if self._cdf is None:
            self.refresh()
        draws = torch.rand(n, generator=self.generator, device=device, dtype=torch.float64) * self._cdf[-1]
        return torch.searchsorted(self._cdf, draws, right=True).clamp_(max=self.size - 1)

    def sample(self, n: int) -> Batch | None:
        """``n`` transitions drawn with replacement, or None while empty. Their loss ``weights`` are 1:
        the weighting is in the draw."""
        if self.size == 0:
            return None
        idx = self._indices(n)
        batch = {k: v[idx] for k, v in self.data.items()}
        if self.mode == "penalty":
            batch["rewards"] = batch["rewards"] - self.penalty * batch["uncertainty"]
        batch["weights"] = torch.ones(n, device=idx.device)
        return batch

    def state_dict(self) -> dict[str, object]:
        """The filled slots (on the CPU) and the ring's position, for checkpoints."""
        return {"data": {k: v[:self.size].cpu().clone() for k, v in self.data.items()}, "size": self.size,
                "cursor": self.cursor, "added": self.added}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Refill the buffer from :meth:`state_dict`'s output, on the generator's device."""
        self.data, self._cdf = {}, None
        self.size = self.cursor = self.added = 0
        data = state["data"]
        if data:
            if state["size"] > self.capacity:
                raise ValueError(f"buffer state holds {state['size']} transitions, capacity is {self.capacity}")
            device = self.generator.device if self.generator is not None else None
            self.data = {k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype, device=device)
                         for k, v in data.items()}
            for key, value in data.items():
                self.data[key][:len(value)] = value.to(device)
        self.size, self.cursor, self.added = int(state["size"]), int(state["cursor"]), int(state["added"])

    def summary(self) -> dict[str, float]:
        """u quantiles, mean, effective sample size and fill of the buffer (for logging)."""
        u = self.uncertainty().float()
        if len(u) == 0:
            return {"buffer_size": 0.0}
        q = torch.quantile(u[torch.linspace(0, len(u) - 1, min(len(u), 100_000), device=u.device).long()],
                           torch.tensor([0.1, 0.5, 0.9], device=u.device))
        return {"buffer_size": float(self.size), "u_mean": float(u.mean()), "u_p10": float(q[0]),
                "u_p50": float(q[1]), "u_p90": float(q[2]), "ess": self.effective_sample_size()}

