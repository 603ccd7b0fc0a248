"""torchmetrics helpers shared by logo's LightningModules."""

from __future__ import annotations

import torch
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


def calibration_bins(u: torch.Tensor, error: torch.Tensor, bins: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibration of an uncertainty: the samples sorted by ``u`` [B] and split into ``bins`` bins of equal
    count (fewer with fewer samples); returns each bin's mean u and mean ``error`` [B], both [bins] and
    increasing in u. A useful u gives errors that rise along the bins. Non-finite pairs are left out.

    Example:
        >>> calibration_bins(torch.tensor([4.0, 1.0, 3.0, 2.0]), torch.tensor([40.0, 10.0, 30.0, 20.0]), bins=2)
        (tensor([1.5000, 3.5000]), tensor([15., 35.]))
    """
    u, error = u.detach().flatten().float(), error.detach().flatten().float()
    finite = u.isfinite() & error.isfinite()
    u, error = u[finite], error[finite]
    if len(u) == 0:
        return u, error
    order = u.argsort()
    parts = min(bins, len(u))
    return (torch.stack([c.mean() for c in u[order].tensor_split(parts)]),
            torch.stack([c.mean() for c in error[order].tensor_split(parts)]))
