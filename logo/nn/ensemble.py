"""K independent MLPs evaluated as one vectorised network (batched matmuls, not a Python loop)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """K linear layers applied in one ``baddbmm``: x [K, B, in] -> [K, B, out].

    Every member is initialised independently with nn.Linear's default distribution
    (uniform in +-1/sqrt(in_dim)), so members differ from the start.
    """

    def __init__(self, ensemble_size: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """K MLPs with ReLU between layers; input [B, in] (shared by all members) or [K, B, in].

    Example:
        >>> net = EnsembleMLP(7, 10, [32, 32], 4)
        >>> net(torch.zeros(5, 10)).shape  # [K, B, out]
        torch.Size([7, 5, 4])
    """

    def __init__(self, ensemble_size: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int):
        super().__init__()
        self.ensemble_size = ensemble_size
        dims = [in_dim, *hidden_sizes, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(ensemble_size, a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.ensemble_size, *x.shape)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
