"""Callbacks the subprocess tests name by class path (``tests.helpers.X``): probes, not stand-ins.

They observe or pause a real ``logo fit``; nothing here replaces logo's own code.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

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
