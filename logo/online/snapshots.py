"""Checkpoints of an online learner at rising evaluation returns, and the index that names them.

``ReturnSnapshots`` saves ``snapshots/return-<threshold>.ckpt`` the first time ``eval/return`` reaches each
configured threshold, and ``snapshots/final.ckpt`` when training ends; ``snapshots/index.json`` records for
each one the evaluation (return, win rate), the environment steps, the iteration, the episodes played so far
and the journal files holding them, which is what the learned tiers need (``logo tiers``): the medium
snapshot is picked from it, and the journal up to it is the medium-replay dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from logo.errors import LogoError
from logo.provenance import write_json

INDEX = "index.json"


def read_snapshot_index(folder: str | Path) -> dict[str, Any]:
    """The ``index.json`` of a snapshot folder: {"thresholds": [...], "snapshots": [...], "final": {...} or None}."""
    path = Path(folder) / INDEX
    if not path.is_file():
        return {"thresholds": [], "snapshots": [], "final": None}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LogoError(f"{path}: not valid JSON ({exc}); remove it and rerun the behaviour training") from exc


class ReturnSnapshots(Callback):
    """Save a checkpoint each time the evaluation return first reaches a threshold, and one at the end.

    Needs an online learner that keeps its latest evaluation in ``last_evaluation`` and a data module that
    journals the episodes played (``OnlineMAPPO`` with ``RolloutDataModule``, ``OnlineTD3`` with
    ``OnlineEnvDataModule``). The snapshots reached survive an interrupted run (they are in the callback's
    checkpoint state and on disk); thresholds never reached by the end of training are named in a warning
    and in the index (``unreached``).

    Args:
        thresholds: evaluation returns, in any order; each is snapshotted once.
        dirpath: snapshot folder; default ``<trainer.default_root_dir>/snapshots``.

    Example (YAML, under ``trainer.callbacks``)::

        - class_path: ReturnSnapshots
          init_args: {thresholds: [0.5, 1.0, 1.5]}
    """

    def __init__(self, thresholds: list[float], dirpath: str | None = None):
        if not thresholds:
            raise LogoError("ReturnSnapshots.thresholds: expected at least one evaluation return")
        self.thresholds = sorted(float(t) for t in thresholds)
        self.dirpath = dirpath
        self.snapshots: list[dict[str, Any]] = []
        self._seen: tuple[int, int] | None = None  # (iteration, env steps) of the last evaluation handled

    def folder(self, trainer: Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "snapshots"

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        if not hasattr(pl_module, "last_evaluation") or not hasattr(dm, "journal_files"):
            raise LogoError(f"ReturnSnapshots needs an online learner and a data module that journals its episodes "
                            f"(OnlineMAPPO with RolloutDataModule, OnlineTD3 with OnlineEnvDataModule), got "
                            f"{type(pl_module).__name__} with {type(dm).__name__}")

    def reached(self) -> set[float]:
        return {s["threshold"] for s in self.snapshots}

    def _record(self, trainer: Trainer, pl_module: LightningModule, name: str) -> dict[str, Any]:
        evaluation = dict(pl_module.last_evaluation)
        path = self.folder(trainer) / f"{name}.ckpt"
        trainer.save_checkpoint(path)
        return {"checkpoint": str(path), "eval_return": evaluation["return"],
                "eval_return_std": evaluation["return_std"], "eval_win_rate": evaluation["win_rate"],
                "env_steps": evaluation["env_steps"], "iteration": evaluation["iteration"],
                "episodes_played": evaluation["episodes_played"], "journal_files": evaluation["journal_files"],
                "seed": trainer.datamodule.seed}

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        evaluation = pl_module.last_evaluation
        if evaluation is None or (evaluation["iteration"], evaluation["env_steps"]) == self._seen:
            return
        self._seen = (evaluation["iteration"], evaluation["env_steps"])
        new = [t for t in self.thresholds if t not in self.reached() and evaluation["return"] >= t]
        if not new:
            return
        record = self._record(trainer, pl_module, f"return-{new[-1]:g}")
        self.snapshots += [{"threshold": t, **record} for t in new]
        self.write_index(trainer, final=None)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if pl_module.last_evaluation is None:
            return
        final = self._record(trainer, pl_module, "final")
        self.write_index(trainer, final=final)
        unreached = [t for t in self.thresholds if t not in self.reached()]
        if unreached:
            rank_zero_warn(f"ReturnSnapshots: eval/return never reached {unreached} by the end of training "
                           f"({final['env_steps']} env steps, last eval/return {final['eval_return']:.3f}); "
                           f"snapshots kept: {sorted(self.reached())}")

    def write_index(self, trainer: Trainer, final: dict[str, Any] | None) -> None:
        if not trainer.is_global_zero:
            return
        unreached = [t for t in self.thresholds if t not in self.reached()]
        write_json(self.folder(trainer) / INDEX, {"thresholds": self.thresholds, "snapshots": self.snapshots,
                                                  "unreached": unreached, "final": final})

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state.get("snapshots", []))
