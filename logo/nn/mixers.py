"""Value-decomposition mixers: combine per-agent Q values into a joint Q_tot(s, a)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VDNMixer(nn.Module):
    """VDN (Sunehag et al., 2018): ``Q_tot = sum_i Q_i``; the state is ignored.

    Example:
        >>> VDNMixer()(torch.ones(4, 3), torch.zeros(4, 7))
        tensor([3., 3., 3., 3.])
    """

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q [B, ..., N], state [B, S] -> Q_tot [B, ...]."""
        return q.sum(-1)


class QMixer(nn.Module):
    """QMIX (Rashid et al., 2018): a monotonic mixing network whose weights hypernetworks make from the state.

    ``Q_tot = w2(s) . elu(W1(s)^T q + b1(s)) + V(s)`` with ``|W1|`` and ``|w2|`` non-negative, so
    ``dQ_tot / dQ_i >= 0`` and each agent's greedy action is the joint greedy action. The
    hypernetworks run once per state, so ``q`` may carry extra sample axes (``[B, K, N]`` for K
    candidate joint actions) at little extra cost.

    Args:
        n_agents: number of agents N.
        state_dim: global state size S.
        embed_dim: width of the mixing layer.
        hyper_hidden: hidden width of the hypernetworks.

    Example:
        >>> mixer = QMixer(n_agents=3, state_dim=7)
        >>> mixer(torch.zeros(4, 10, 3), torch.zeros(4, 7)).shape  # 10 joint actions per state
        torch.Size([4, 10])
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hyper_hidden: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hyper_hidden), nn.ReLU(),
                                      nn.Linear(hyper_hidden, n_agents * embed_dim))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hyper_hidden), nn.ReLU(), nn.Linear(hyper_hidden, embed_dim))
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q [B, ..., N], state [B, S] -> Q_tot [B, ...]."""
        b = state.shape[0]
        extra = q.dim() - 2  # sample axes between the batch and the agents
        view = (b,) + (1,) * extra
        w1 = self.hyper_w1(state).abs().view(b, self.n_agents, self.embed_dim)  # [B, N, E]
        b1 = self.hyper_b1(state).view(*view, self.embed_dim)  # [B, 1.., E]
        w2 = self.hyper_w2(state).abs().view(*view, self.embed_dim)  # [B, 1.., E]
        v = self.value(state).view(view)  # [B, 1..]
        # every sample of a state in one [M, N] @ [N, E] product: B matmuls, not one per (state, sample)
        mixed = torch.bmm(q.reshape(b, -1, self.n_agents), w1).view(*q.shape[:-1], self.embed_dim)  # [B, ..., E]
        hidden = F.elu(mixed + b1)  # [B, ..., E]
        return (hidden * w2).sum(-1) + v
