"""Callbacks the subprocess tests name by class path (``tests.helpers.X``): probes, not stand-ins.

They observe or pause a real ``logo fit``; nothing here replaces logo's own code.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils._python_dispatch import TorchDispatchMode

WALL_CLOCK = {"synthetic/rollout_transitions_per_s", "synthetic/sampler_share"}  # timings, not results


def logged_metrics(path: Path) -> dict[tuple[str, int], float]:
    """A CSVLogger ``metrics.csv`` as {(key, step): value}, wall-clock timings left out."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    return {(key, int(row["step"])): float(value) for row in rows for key, value in row.items()
            if key not in ("step", "epoch", *WALL_CLOCK) and value != ""}


class Stall(Callback):
    """After training step ``after_step``, write ``marker`` and sleep, so a test can SIGKILL the run there."""

    def __init__(self, after_step: int, marker: str, seconds: float = 600.0):
        self.after_step, self.marker, self.seconds = after_step, marker, seconds

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.after_step:
            Path(self.marker).write_text(str(trainer.global_step))
            time.sleep(self.seconds)


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class RankProbe(Callback):
    """At the end of fit, each rank writes ``{out_dir}/rank{r}.json``: its parameters' digest, the digest of
    its synthetic buffer and its batch sampler's state (to show what differs between DDP ranks)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        synthetic = getattr(dm, "synthetic", None)
        buffer = getattr(synthetic, "buffer", None)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "params": _digest(p for p in pl_module.parameters()),
            "buffer": _digest(buffer.storage.filled(k) for k in sorted(buffer.storage.data)) if buffer else None,
            "buffer_size": len(buffer) if buffer else 0,
            "rounds": getattr(synthetic, "rounds", 0),
            "sampler": _digest([dm._train_batches.generator.get_state()]),
            "trained_batches": dm._trained_batches,
            "cuda": torch.cuda.is_available(),
        }
        Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _caller() -> str:
    """``file:line`` of the innermost frame outside torch (and this file): who asked for the op."""
    frame = sys._getframe(1)
    while frame is not None and ("/torch/" in frame.f_code.co_filename or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{'/'.join(Path(frame.f_code.co_filename).parts[-3:])}:{frame.f_lineno}"


class HostSyncs(Callback, TorchDispatchMode):
    """Record, per training step, the ops that make the host wait for the device: a tensor read into Python
    (``.item()``, ``bool(t)``, ``float(t)``: ``_local_scalar_dense``), ``nonzero`` and indexing with a boolean mask
    (its output size depends on the data). From ``on_train_batch_start`` to ``on_train_batch_end``: forward, backward,
    clipping and the optimizer step, not the batch's gather. ``steps`` maps the global step to the op names seen.
    On a CPU these cost next to nothing; on a GPU each one waits for every queued kernel."""

    def __init__(self):
        super().__init__()
        self.steps: dict[int, list[str]] = {}
        self._step: int | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__
        masked = name.startswith(("index.", "index_put")) and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()) or ())
        if name.startswith(("_local_scalar_dense", "nonzero", "masked_select")) or masked:
            self.steps[self._step].append(f"{name.split('.')[0]}{' (bool mask)' if masked else ''} at {_caller()}")
        return func(*args, **(kwargs or {}))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx) -> None:
        self._step = trainer.global_step
        self.steps[self._step] = []
        self.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        self.__exit__(None, None, None)
