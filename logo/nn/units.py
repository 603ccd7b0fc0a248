"""The units a model shares with its training data: observation and state normalisers, action bounds.

:class:`DataUnits` is mixed into logo's LightningModules (world models and offline policies) ahead
of ``LightningModule``. Its buffers sit on the module itself (``obs_norm.mean``, ``obs_norm.std``,
``state_norm.*``, ``action_low``, ``action_high``), so they travel in its state_dict and checkpoint
under those names, and a loaded module acts on raw environment inputs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from logo.dims import LINKED_DIMS, Batch, linked_dims
from logo.errors import check_fits
from logo.nn.actions import from_unit_box, to_unit_box
from logo.nn.normalizer import Normalizer


class DataUnits(nn.Module):
    """Normalisers and action bounds copied from the training split's statistics, and the dims they fit.

    As a mixin of a LightningModule it also implements ``setup``: the dims named by ``checked_dims``
    must match the data module's (a LogoError names each one that differs), and at ``fit`` the data
    module's statistics are copied in by :meth:`units_from` (the one place; subclasses extend it).

    Args:
        n_agents: number of agents.
        obs_dim: per-agent observation size.
        state_dim: global state size.
        action_kind: discrete or continuous actions.
        action_size: number of discrete actions or continuous action dimension.

    Example:
        >>> units = DataUnits(2, 3, 4, "continuous", 1)
        >>> units.set_statistics({"obs_mean": torch.zeros(2, 3), "obs_std": torch.ones(2, 3),
        ...                       "state_mean": torch.zeros(4), "state_std": torch.ones(4),
        ...                       "action_low": torch.tensor([0.0]), "action_high": torch.tensor([4.0])})
        >>> units.scale_actions(torch.tensor([1.0]))
        tensor([-0.5000])
    """

    checked_dims: ClassVar[tuple[str, ...]] = LINKED_DIMS  # dims that must match the data module's

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int):
        super().__init__()
        self.discrete = action_kind == "discrete"
        self.n_agents, self.obs_dim, self.state_dim, self.action_size = n_agents, obs_dim, state_dim, action_size
        self.obs_norm = Normalizer((n_agents, obs_dim))
        self.state_norm = Normalizer((state_dim,))
        self.register_buffer("action_low", -torch.ones(action_size))  # [action_dim] (continuous)
        self.register_buffer("action_high", torch.ones(action_size))

    def set_statistics(self, stats: Batch) -> None:
        """Copy observation/state statistics and (continuous) action bounds (see ``compute_statistics``)."""
        self.obs_norm.set_stats(stats["obs_mean"], stats["obs_std"])
        self.state_norm.set_stats(stats["state_mean"], stats["state_std"])
        if not self.discrete:
            self.action_low.copy_(stats["action_low"])
            self.action_high.copy_(stats["action_high"])

    def scale_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Continuous actions in the dataset's bounds -> [-1, 1]."""
        return to_unit_box(actions, self.action_low, self.action_high)

    def unscale_actions(self, scaled: torch.Tensor) -> torch.Tensor:
        """Continuous actions in [-1, 1] -> the dataset's bounds."""
        return from_unit_box(scaled, self.action_low, self.action_high)

    # ---- as a LightningModule mixin ----------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self.trainer is not None else None
        if dm is None or not getattr(dm, "statistics", None):
            return
        check_fits(self.hparams, linked_dims(dm, self.checked_dims), type(self).__name__, f"dataset {dm.path}")
        if stage == "fit":
            self.units_from(dm)

    def units_from(self, datamodule: Any) -> None:
        """Copy the units of a set-up data module (its ``statistics``) into the buffers."""
        self.set_statistics(datamodule.statistics)

    def fill_missing_units(self, state_dict: dict[str, Any]) -> None:
        """Add the unit buffers ``state_dict`` lacks, at their defaults (identity normalisers, bounds [-1, 1]):
        for checkpoints written before a module had them."""
        kind = "discrete" if self.discrete else "continuous"
        defaults = DataUnits(self.n_agents, self.obs_dim, self.state_dim, kind, self.action_size).state_dict()
        for name, value in defaults.items():
            state_dict.setdefault(name, value)
