"""A callback that fails a fit part-way, like a killed run (``class_path: tests.online.interrupt.Interrupt``)."""

from __future__ import annotations

from lightning.pytorch import Callback


class Interrupt(Callback):
    """Raises once the data module's ``counter`` (``env_steps``, ``iterations``, ...) reaches ``after``."""

    def __init__(self, after: int, counter: str = "env_steps"):
        self.after, self.counter = after, counter

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if getattr(trainer.datamodule, self.counter) >= self.after:
            raise RuntimeError("simulated interruption")
