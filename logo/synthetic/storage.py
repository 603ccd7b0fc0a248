"""Where synthetic transitions live (storage) and which slots new ones take (writer).

In the style of TorchRL's replay buffers, the buffer is three parts: a storage that holds
tensors, a writer that decides where new transitions go, and a sampler that picks indices
(:mod:`logo.synthetic.samplers`). Here the storage is a fixed-capacity dict of on-device
tensors ``{key: [capacity, ...]}`` and the writer a ring: the oldest transitions are
overwritten first.
"""

from __future__ import annotations

import torch

from logo.dims import Batch


class TensorStorage:
    """``capacity`` transitions as one preallocated tensor per key, created on the first write.

    Args:
        capacity: number of slots.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity: expected at least 1 transition, got {capacity}")
        self.capacity = capacity
        self.data: Batch = {}
        self.size = 0  # filled slots (the first ``size`` slots)

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device | None:
        return next(iter(self.data.values())).device if self.data else None

    def set(self, slots: torch.Tensor, transitions: Batch) -> None:
        """Write ``transitions {key: [M, ...]}`` into ``slots [M]``; the keys must be the same at every write."""
        if not self.data:
            self.data = {k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype, device=v.device)
                         for k, v in transitions.items()}
        if set(transitions) != set(self.data):
            raise KeyError(f"synthetic transitions: expected keys {sorted(self.data)}, got {sorted(transitions)}")
        for key, value in transitions.items():
            self.data[key][slots] = value.to(self.data[key].dtype)
        self.size = min(self.size + len(slots), self.capacity)

    def get(self, index: torch.Tensor) -> Batch:
        """The transitions at ``index [n]`` (a copy)."""
        return {k: v[index] for k, v in self.data.items()}

    def filled(self, key: str) -> torch.Tensor:
        """The filled slots of one key ``[size, ...]`` (a view)."""
        return self.data[key][:self.size] if self.data else torch.empty(0)

    def state_dict(self) -> dict[str, object]:
        return {"data": {k: v[:self.size].cpu().clone() for k, v in self.data.items()}, "size": self.size}

    def load_state_dict(self, state: dict[str, object], device: torch.device | None = None) -> None:
        """Refill from :meth:`state_dict`'s output, on ``device``."""
        self.data, self.size = {}, 0
        data = state["data"]
        if data:
            if state["size"] > self.capacity:
                raise ValueError(f"buffer state holds {state['size']} transitions, capacity is {self.capacity}")
            self.data = {k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype, device=device)
                         for k, v in data.items()}
            for key, value in data.items():
                self.data[key][:len(value)] = value.to(device)
        self.size = int(state["size"])


class RingWriter:
    """Hands out the slots of a ring: new transitions overwrite the oldest."""

    def __init__(self) -> None:
        self.cursor = 0  # next slot to write
        self.added = 0  # transitions ever added

    def extend(self, storage: TensorStorage, transitions: Batch) -> None:
        """Write ``transitions`` into ``storage`` after the last written slot (only the newest ``capacity`` fit)."""
        m = len(next(iter(transitions.values())))
        if m > storage.capacity:
            transitions = {k: v[-storage.capacity:] for k, v in transitions.items()}
            m = storage.capacity
        device = next(iter(transitions.values())).device if storage.device is None else storage.device
        slots = (self.cursor + torch.arange(m, device=device)) % storage.capacity
        storage.set(slots, transitions)
        self.cursor = (self.cursor + m) % storage.capacity
        self.added += m

    def state_dict(self) -> dict[str, int]:
        return {"cursor": self.cursor, "added": self.added}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.cursor, self.added = int(state["cursor"]), int(state["added"])
