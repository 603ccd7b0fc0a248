"""Continuous actions between their box bounds and the unit box [-1, 1] that networks work in."""

from __future__ import annotations

import torch


def to_unit_box(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Actions within [low, high] (per action dimension) -> [-1, 1]."""
    return 2 * (actions - low) / (high - low) - 1


def from_unit_box(unit: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] (e.g. a tanh output) -> actions within [low, high]."""
    return low + (unit + 1) * (high - low) / 2
