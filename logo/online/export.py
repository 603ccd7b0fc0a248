"""Export an online run's replay buffer as a ``medium-replay`` dataset when the policy first reaches a level."""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from logo.errors import LogoError
from logo.online.datamodule import OnlineEnvDataModule


class ReplayExport(Callback):
    """The first time ``eval/return`` reaches ``return_threshold``: save ``medium.ckpt`` and write the buffer.

    D4RL's recipe: the policy checkpointed when evaluation first reaches the threshold is the
    ``medium`` behaviour policy, and every complete episode its training run has played so far
    (the replay buffer) is the ``medium-replay`` dataset. If training ends below the threshold,
    nothing is written and a warning says so.

    Args:
        out: dataset path, conventionally ``data/<family>/<scenario>/medium-replay.zarr``.
        return_threshold: the ``eval/return`` that counts as medium.
        quality: the dataset's quality label.
        checkpoint_name: file name of the checkpoint saved at that moment, in the run's checkpoint folder.
        overwrite: replace an existing dataset at ``out`` (otherwise the run refuses to start).
        monitor: the logged metric compared with the threshold.

    Example (YAML, under ``trainer.callbacks``)::

        - class_path: ReplayExport
          init_args: {out: data/mamujoco/HalfCheetah-2x3/medium-replay.zarr, return_threshold: 3000}
    """

    def __init__(self, out: str, return_threshold: float, quality: str = "medium-replay",
                 checkpoint_name: str = "medium.ckpt", overwrite: bool = False, monitor: str = "eval/return"):
        self.out = Path(out)
        self.return_threshold = float(return_threshold)
        self.quality = quality
        self.checkpoint_name = checkpoint_name
        self.overwrite = overwrite
        self.monitor = monitor
        self.exported: Path | None = None
        self.checkpoint_path: Path | None = None
        self.best = -math.inf

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.datamodule, OnlineEnvDataModule):
            raise LogoError(f"ReplayExport needs data.class_path OnlineEnvDataModule, got "
                            f"{type(trainer.datamodule).__name__}")
        if self.out.exists() and not self.overwrite:  # fail now, not when the threshold is reached
            raise LogoError(f"{self.out}: already exists (set ReplayExport's overwrite: true to replace it)")

    def checkpoint_dir(self, trainer: Trainer) -> Path:
        """The ModelCheckpoint folder if there is one, else the trainer's root folder."""
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and getattr(ckpt, "dirpath", None):
            return Path(ckpt.dirpath)
        return Path(trainer.default_root_dir)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.exported is not None or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.best = max(self.best, value)
        if value < self.return_threshold:
            return
        dm: OnlineEnvDataModule = trainer.datamodule
        self.checkpoint_path = self.checkpoint_dir(trainer) / self.checkpoint_name
        trainer.save_checkpoint(self.checkpoint_path)
        if not trainer.is_global_zero:
            self.exported = self.out
            return
        behaviour = (f"replay buffer of {type(pl_module).__name__} trained online from scratch in "
                     f"{dm.family}/{dm.scenario}: every complete episode played from env step 0 until "
                     f"{self.monitor} first reached {value:.1f} (threshold {self.return_threshold:g}) at env step "
                     f"{dm.env_steps}; the policy at that moment is {self.checkpoint_path}")
        hparams = {k: list(v) if isinstance(v, (list, tuple)) else v if isinstance(v, (int, float, str, bool))
                   or v is None else str(v) for k, v in dict(pl_module.hparams).items()}
        self.exported = dm.export_replay(
            self.out, quality=self.quality, behaviour=behaviour, overwrite=self.overwrite,
            extra={"eval_return": value, "return_threshold": self.return_threshold,
                   "checkpoint": str(self.checkpoint_path), "behaviour_hparams": hparams})
        episodes = len(dm.buffer.complete_episodes())
        rank_zero_info(f"ReplayExport: {self.monitor} {value:.1f} >= {self.return_threshold:g} at env step "
                       f"{dm.env_steps}: saved {self.checkpoint_path} and wrote {episodes} episodes to "
                       f"{self.exported}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.exported is None:
            rank_zero_warn(f"ReplayExport: {self.monitor} never reached {self.return_threshold:g} (best "
                           f"{self.best:.1f}); no {self.quality} dataset was written to {self.out} and no "
                           f"{self.checkpoint_name} was saved")
