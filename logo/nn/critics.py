"""Critics on (global state, joint action)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from logo.nn.mlp import MLP


class TwinCritic(nn.Module):
    """Two independent Q networks on (state, joint action)."""

    def __init__(self, state_dim: int, joint_action_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.q1 = MLP(state_dim + joint_action_dim, hidden_sizes, 1)
        self.q2 = MLP(state_dim + joint_action_dim, hidden_sizes, 1)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state [B, state_dim], actions [B, N, action_dim] -> (q1 [B], q2 [B])."""
        x = torch.cat([state, actions.flatten(1)], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)
