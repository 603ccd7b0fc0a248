"""Affine normalisation whose statistics travel with a model's state_dict (and so its checkpoint)."""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """(x - mean) / std with buffers of a fixed shape; identity until :meth:`set_stats` is called.

    Example:
        >>> norm = Normalizer((3,))
        >>> norm.set_stats(torch.tensor([1., 2., 3.]), torch.tensor([2., 2., 2.]))
        >>> norm(torch.tensor([3., 2., 1.]))
        tensor([ 1.,  0., -1.])
    """

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"normalisation statistics: expected shape {tuple(self.mean.shape)}, "
                             f"got mean {tuple(mean.shape)} and std {tuple(std.shape)}")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
