"""Save and restore the global random generators with every checkpoint, per rank."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from logo.distributed import gather_objects, own_entry


def capture_random_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and current CUDA device) global generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # tensors and plain numbers only, so checkpoints stay loadable with torch.load(weights_only=True)
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    states: dict[str, Any] = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    """Put back what :func:`capture_random_states` returned."""
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


class RandomStates(Callback):
    """Checkpoints carry each rank's global RNG states; a resumed fit continues their sequences.

    The losses draw from the global generators (CQL's sampled actions, SAC's noise), so without
    this a resumed run would draw different numbers from the uninterrupted one. The states are
    put back at ``on_train_start``, after Lightning's sanity check (which isolates the RNG itself).
    :class:`~logo.trainer.LogoTrainer` adds this callback to every run.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"per_rank": gather_objects(capture_random_states())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = own_entry(state_dict.get("per_rank", []), "random generator states")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None
