"""Multi-layer perceptrons, including one shared by all agents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear layers with ReLU between them (optionally LayerNorm before each activation).

    Example:
        >>> MLP(4, [32, 32], 2)(torch.zeros(8, 4)).shape
        torch.Size([8, 2])
    """

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int], out_dim: int, layer_norm: bool = False):
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden_sizes:
            layers.append(nn.Linear(last, width))
            if layer_norm:
                layers.append(nn.LayerNorm(width))
            layers.append(nn.ReLU())
            last = width
        layers.append(nn.Linear(last, out_dim))
        super().__init__(*layers)


class AgentSharedMLP(nn.Module):
    """One MLP applied to every agent, with a one-hot agent id appended to each agent's input.

    Parameters are shared across agents, as in most offline MARL baselines; the id lets the
    network still specialise per agent.

    Example:
        >>> net = AgentSharedMLP(n_agents=3, in_dim=10, out_dim=5, hidden_sizes=[64])
        >>> net(torch.zeros(8, 3, 10)).shape  # [B, N, out_dim]
        torch.Size([8, 3, 5])
    """

    def __init__(self, n_agents: int, in_dim: int, out_dim: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False):
        super().__init__()
        self.n_agents = n_agents
        self.net = MLP(in_dim + n_agents, hidden_sizes, out_dim, layer_norm)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)  # [N, N]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., N, in_dim] -> [..., N, out_dim]."""
        ids = self.agent_ids.expand(*x.shape[:-1], self.n_agents)  # [..., N, N]
        return self.net(torch.cat([x, ids], dim=-1))
