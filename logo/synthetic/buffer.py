"""An on-device ring buffer of world-model transitions with LOGO's uncertainty-aware sampling.

Three parts, as in TorchRL's replay buffers: a :class:`~logo.synthetic.storage.TensorStorage`
holds the transitions, a :class:`~logo.synthetic.storage.RingWriter` picks the slots new ones
overwrite, and a sampler (:mod:`logo.synthetic.samplers`) picks the slots a batch draws.
The ``penalty`` mode's reward change is applied to the drawn rows, never to the stored ones.
"""

from __future__ import annotations

import torch

from logo.dims import Batch
from logo.synthetic.samplers import SamplingOptions, make_sampler
from logo.synthetic.storage import RingWriter, TensorStorage


class SyntheticBuffer:
    """The last ``capacity`` model transitions (ring buffer), sampled by uncertainty.

    Args:
        capacity: transitions kept; the oldest are overwritten first.
        sampling: how draws are made (:class:`~logo.synthetic.samplers.SamplingOptions`; default LOGO's weighting).
        generator: source of the draws (on the buffer's device).

    Example:
        >>> buf = SyntheticBuffer(capacity=1000)
        >>> buf.add({"rewards": torch.zeros(3), "uncertainty": torch.tensor([0.1, 1.0, 5.0])})
        >>> buf.probabilities().round(decimals=3)
        tensor([0.5770, 0.3710, 0.0520])
    """

    def __init__(self, capacity: int, sampling: SamplingOptions | None = None,
                 generator: torch.Generator | None = None):
        self.options = sampling if sampling is not None else SamplingOptions()
        self.storage = TensorStorage(capacity)
        self.writer = RingWriter()
        self.sampler = make_sampler(self.options)
        self.generator = generator

    def __len__(self) -> int:
        return len(self.storage)

    def add(self, transitions: Batch) -> None:
        """Append a batch of transitions ``{key: [M, ...]}`` (with ``uncertainty [M]``), overwriting the oldest."""
        if "uncertainty" not in transitions:
            raise KeyError("synthetic transitions need an 'uncertainty' entry")
        if len(transitions["uncertainty"]) == 0:
            return
        self.writer.extend(self.storage, transitions)
        self.refresh(lazy=True)

    def uncertainty(self) -> torch.Tensor:
        """u of the filled slots [M]."""
        return self.storage.filled("uncertainty")

    def weights(self) -> torch.Tensor:
        """Unnormalised draw weights of the filled slots [M] (all ones unless ``weighted``)."""
        return self.sampler.weights(self.uncertainty().float())

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

    def refresh(self, lazy: bool = False) -> None:
        """Rebuild what the sampler precomputes from the stored u (``lazy``: at the next draw)."""
        if lazy:
            self.sampler.invalidate()
        else:
            self.sampler.refresh(self.uncertainty())

    def sample(self, n: int) -> Batch | None:
        """``n`` transitions drawn with replacement, or None while empty. Their loss ``weights`` are 1:
        the weighting is in the draw."""
        if len(self.storage) == 0:
            return None
        idx = self.sampler.sample(self.uncertainty(), n, self.generator)
        batch = self.storage.get(idx)
        if self.options.mode == "penalty":
            batch["rewards"] = batch["rewards"] - self.options.penalty * batch["uncertainty"]
        batch["weights"] = torch.ones(n, device=idx.device)
        return batch

    def state_dict(self) -> dict[str, object]:
        """The filled slots (on the CPU) and the ring's position, for checkpoints."""
        return {**self.storage.state_dict(), **self.writer.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Refill the buffer from :meth:`state_dict`'s output, on the generator's device."""
        device = self.generator.device if self.generator is not None else None
        self.storage.load_state_dict(state, device)
        self.writer.load_state_dict(state)
        self.refresh(lazy=True)

    def summary(self) -> dict[str, float]:
        """u quantiles, mean, effective sample size and fill of the buffer (for logging)."""
        u = self.uncertainty().float()
        if len(u) == 0:
            return {"buffer_size": 0.0}
        q = torch.quantile(u[torch.linspace(0, len(u) - 1, min(len(u), 100_000), device=u.device).long()],
                           torch.tensor([0.1, 0.5, 0.9], device=u.device))
        return {"buffer_size": float(len(self)), "u_mean": float(u.mean()), "u_p10": float(q[0]),
                "u_p50": float(q[1]), "u_p90": float(q[2]), "ess": self.effective_sample_size()}
