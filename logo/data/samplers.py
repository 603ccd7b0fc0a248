"""Index samplers of the data module: the training loader yields only step indices ``[B]``.

The generators live in the main process (``num_workers=0``), so their state is saved in
checkpoints and a resumed run draws exactly the batches the interrupted one would have.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset

# The loaders below run in the main process (num_workers=0), where __len__ is exact.
warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined")


class RandomIndexBatches(IterableDataset):
    """``steps`` batches of ``batch_size`` indices drawn uniformly (with replacement) from ``indices``.

    The generator lives in the main process (``num_workers=0``), so its state can be saved and
    restored for exact resumption. Lightning fetches a batch ahead of the one being trained on, so
    the generator's state before each of the last few batches is kept: :meth:`state_before` gives
    the state a resumed run must start from, given how many batches were actually trained on.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, steps: int, seed: int):
        self.indices = indices
        self.batch_size = batch_size
        self.steps = steps
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0  # batches drawn so far, over all epochs
        self._history: deque[tuple[int, torch.Tensor]] = deque(maxlen=8)  # (batch number, state before it)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.steps):
            self._history.append((self.drawn, self.generator.get_state()))
            pos = torch.randint(len(self.indices), (self.batch_size,), generator=self.generator)
            self.drawn += 1
            yield self.indices[pos]

    def state_before(self, batch: int) -> torch.Tensor:
        """The generator's state just before batch number ``batch`` was (or will be) drawn."""
        if batch == self.drawn:
            return self.generator.get_state()
        for number, state in self._history:
            if number == batch:
                return state
        raise RuntimeError(f"batch sampler: no saved state for batch {batch} (drawn {self.drawn})")

    def restore(self, state: torch.Tensor, drawn: int) -> None:
        """Continue from ``state``, which precedes batch number ``drawn``."""
        self.generator.set_state(state)
        self.drawn = drawn
        self._history.clear()


class SequentialIndexBatches(IterableDataset):
    """Every index once, in order, in batches of at most ``batch_size`` (for validation)."""

    def __init__(self, indices: torch.Tensor, batch_size: int):
        self.indices = indices
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.indices.split(self.batch_size)


def loader(batches: IterableDataset) -> DataLoader:
    """A loader of ready-made index batches. Its own (unused) generator keeps ``iter()`` from drawing its base
    seed from the global RNG, which would shift the losses' random numbers at every new epoch and make a
    run resumed from an epoch-end checkpoint draw differently from the uninterrupted one."""
    return DataLoader(batches, batch_size=None, generator=torch.Generator())


def sampler_seed(seed: int, rank: int) -> int:
    """Seed of a rank's training sampler: distinct per rank, so DDP ranks draw different batches."""
    return seed + 7919 * (rank + 1)
