"""World-model loss terms as plain functions (each tested alone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_nll(mean: torch.Tensor, log_std: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None, beta: float = 0.0) -> torch.Tensor:
    """Mean negative log-likelihood of ``target`` under N(mean, exp(log_std)^2), constant dropped.

    ``mask`` (broadcastable to ``target``, bool) selects the features that count (padded
    observation features do not). ``beta > 0`` gives the beta-NLL of Seitzer et al. (2022):
    each term is weighted by the detached variance to the power beta, so features the model
    finds noisy do not stop their mean from learning (plain NLL scales the mean's gradient by
    1/variance); beta=0 is the plain NLL, beta=1 gives the mean the gradient of an MSE.
    """
    nll = 0.5 * ((target - mean) * torch.exp(-log_std)) ** 2 + log_std
    if beta:
        nll = nll * torch.exp(2 * beta * log_std).detach()
    return masked_mean(nll, mask)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the features ``mask`` selects (all when None)."""
    return masked_mean((prediction - target) ** 2, mask)


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def termination_loss(logits: torch.Tensor, terminals: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the termination logits [B] against terminals [B] (0/1)."""
    return F.binary_cross_entropy_with_logits(logits, terminals.float())


def legal_action_loss(logits: torch.Tensor, next_avail: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of legal-action logits [B, N, n_actions] against the next masks (bool)."""
    return F.binary_cross_entropy_with_logits(logits, next_avail.float())
