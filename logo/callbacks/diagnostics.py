"""World-model diagnostics at the end of every validation epoch: open-loop error and the plots of u."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from logo.loggers import log_calibration, log_histogram
from logo.metrics import calibration_bins
from logo.world_model.base import WorldModel
from logo.world_model.open_loop import open_loop_errors


class WorldModelDiagnostics(Callback):
    """Log a world model's diagnostics after each validation epoch that saw a batch; other modules are left alone.

    * ``val/open_loop_mse_k{k}``: :func:`~logo.world_model.open_loop.open_loop_errors` from the data module's
      held-out split (``storage_on``, ``val_indices``), with the model's ``open_loop_steps`` and
      ``open_loop_starts`` hparams; on every rank, with ``sync_dist`` (the ranks validate the same episodes).
      Skipped for a data module without held-out episodes.
    * ``val/u_histogram`` and ``val/u_calibration``: u over the validation epoch and the true next-state error
      against u in 10 equal-count bins (:meth:`WorldModel.validation_uncertainty`), for the loggers that draw;
      rank zero only, not in the sanity check.

    :class:`~logo.trainer.LogoTrainer` adds it to every run.

    Example:
        >>> trainer = Trainer(callbacks=[WorldModelDiagnostics()])  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._batches = 0  # validation batches of the current epoch

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._batches = 0

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batches += 1

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs this before the module's own hook, which resets the metrics the plots read
        if not isinstance(pl_module, WorldModel) or self._batches == 0:  # the model logs nothing either then
            return
        if not trainer.sanity_checking and trainer.is_global_zero:
            pairs = pl_module.validation_uncertainty()
            if pairs is not None:
                u, error = pairs
                log_histogram(pl_module.loggers, "val/u_histogram", u, trainer.global_step)
                log_calibration(pl_module.loggers, "val/u_calibration", *calibration_bins(u, error),
                                trainer.global_step)
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "storage_on") or len(getattr(dm, "val_indices", ())) == 0:
            return
        hp = pl_module.hparams
        errors = open_loop_errors(pl_module, dm.storage_on(pl_module.device), dm.val_indices, hp.open_loop_steps,
                                  hp.open_loop_starts)
        if errors:
            pl_module.log_dict({f"val/open_loop_mse_k{k}": v for k, v in errors.items()}, sync_dist=True)
