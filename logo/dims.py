"""The dims that tie a dataset, an environment and a model together, and the type aliases every layer shares.

This module sits at the bottom of logo's layers (it imports nothing of logo's), so the data
format, the environment adapters and the models can all name the same dims and batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is not imported at run time: the environment adapters import this module
    import torch

ActionKind = Literal["discrete", "continuous"]
Batch = dict[str, "torch.Tensor"]  # a batch of transitions or arrays, {key: [B, ...]}

LINKED_DIMS = ("n_agents", "obs_dim", "state_dim", "action_kind", "action_size")  # linked from data to model
ACTING_DIMS = ("n_agents", "obs_dim", "action_kind", "action_size")  # what a decentralised policy's networks depend on


def linked_dims(source: Any, names: tuple[str, ...] = LINKED_DIMS) -> dict[str, Any]:
    """The dims ``names`` of anything that names them as attributes: a data module, a ``DatasetSpec``,
    an ``EnvSpec`` or a model's hparams."""
    return {name: getattr(source, name) for name in names}
