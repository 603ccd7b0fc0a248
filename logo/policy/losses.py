"""Policy losses as plain functions, tested apart from the LightningModules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ILLEGAL_LOGIT = -1e9  # finite, so a fully masked row still gives a finite (uniform) softmax


def mask_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Push illegal actions' logits to a large negative value. logits, avail: [..., n_actions]."""
    if avail is None:
        return logits
    return logits.masked_fill(~avail, ILLEGAL_LOGIT)


def bc_discrete_loss(logits: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None = None,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the dataset actions under the masked policy.

    Args:
        logits: [B, N, n_actions].
        actions: [B, N] int64.
        avail: [B, N, n_actions] bool legal actions, or None.
        weights: [B] per-transition weights, or None for uniform.
    """
    logp = F.log_softmax(mask_logits(logits, avail), dim=-1)
    nll = -logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1).mean(-1)  # [B]
    return nll.mean() if weights is None else (weights * nll).sum() / weights.sum()


def bc_continuous_loss(pred: torch.Tensor, actions: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between predicted and dataset actions, both [B, N, action_dim]."""
    se = (pred - actions).square().mean((-2, -1))  # [B]
    return se.mean() if weights is None else (weights * se).sum() / weights.sum()


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-transition ``values`` [B] under per-transition ``weights`` [B] (uniform when None)."""
    return values.mean() if weights is None else (weights * values).sum() / weights.sum().clamp_min(1e-8)


def td_target(rewards: torch.Tensor, terminals: torch.Tensor, next_value: torch.Tensor, gamma: float) -> torch.Tensor:
    """``r + gamma * (1 - terminal) * V(s')``, all [B]: the one TD target of MACQL (both kinds) and TD3.

    Only a true termination stops the bootstrap: a truncated step (time limit, rollout horizon)
    bootstraps from its next state. ``terminals`` may be bool or float; rewards already scaled.
    """
    return rewards + gamma * (1.0 - terminals.to(rewards.dtype)) * next_value


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) * target + tau * source`` (one multi-tensor lerp, the kernel
    torch.optim uses; the same result as a ``lerp_`` per parameter)."""
    targets = list(target.parameters())
    if targets:  # a module without parameters (VDN's sum) has nothing to average
        torch._foreach_lerp_(targets, list(source.parameters()), tau)

