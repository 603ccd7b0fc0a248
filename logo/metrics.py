"""torchmetrics helpers shared by logo's LightningModules."""

from __future__ import annotations

from torch import nn
from torchmetrics import Metric


def reset_metrics(module: nn.Module) -> None:
    """Reset every torchmetrics ``Metric`` inside ``module``.

    A metric's state tensors are re-created on reset; when that last happened under
    ``torch.inference_mode`` (the end of ``Trainer.validate``) they are inference tensors, and the
    next ``fit`` on the same module instance fails to update them. Resetting at ``on_fit_start``,
    outside inference mode, gives ordinary tensors again.
    """
    for child in module.modules():
        if isinstance(child, Metric):
            child.reset()
