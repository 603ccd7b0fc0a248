"""What the data module mixes into training batches besides the dataset: a synthetic source.

The data module knows datasets, never models: anything that makes transitions with a model
(:class:`logo.synthetic.ModelRollouts`, or a user's own class) subclasses :class:`SyntheticSource`
and is injected as ``data.synthetic`` (``class_path`` in YAML). The data module calls only the
methods below; when a source needs the policy being trained (rollout rounds), a callback drives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from logo.data.schema import DatasetSpec
from logo.dims import Batch


class SyntheticSource:
    """Base class of the sources of synthetic training transitions (see the module docstring)."""

    def setup(self, spec: DatasetSpec, seed: int) -> None:
        """Called by the data module's ``setup("fit")``: the dataset's spec and this rank's seed."""

    def sample(self, batch_size: int, device: torch.device) -> Batch | None:
        """``batch_size`` transitions with the keys of :func:`~logo.data.reader.gather_transitions` plus
        ``weights [B]`` (and optionally ``uncertainty [B]``), on ``device``; None while the source is empty."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """This rank's state, saved in checkpoints by the data module."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


# ---- deprecated flat rollout keys of the data module (kept for one release) ------------------------------------
# data.init_args.<old key> -> where it lives now, under data.init_args.synthetic (a ModelRollouts)
LEGACY_ROLLOUT_KEYS = {
    "world_model": "synthetic.init_args.world_model",
    "sampling": "synthetic.init_args.sampling.mode (sampling: none is synthetic: null)",
    "horizon": "synthetic.init_args.horizon",
    "rollout_every": "synthetic.init_args.rollout_every",
    "rollout_batch": "synthetic.init_args.rollout_batch",
    "buffer_rollouts": "synthetic.init_args.buffer_rollouts",
    "checkpoint_buffer": "synthetic.init_args.checkpoint_buffer",
    "priority_center": "synthetic.init_args.sampling.priority_center",
    "priority_low": "synthetic.init_args.sampling.priority_low",
    "priority_high": "synthetic.init_args.sampling.priority_high",
    "temperature": "synthetic.init_args.sampling.temperature",
    "relative_uncertainty": "synthetic.init_args.sampling.relative_uncertainty",
    "penalty": "synthetic.init_args.sampling.penalty",
}
LegacyFactory = Callable[[SyntheticSource | None, dict[str, Any]], SyntheticSource | None]
_legacy_factory: LegacyFactory | None = None


def register_legacy_factory(factory: LegacyFactory) -> None:
    """Let the package that owns model rollouts (``logo.synthetic``, above this layer) build the source that the
    deprecated flat keys describe, so that ``data`` never imports it."""
    global _legacy_factory
    _legacy_factory = factory


def source_from_legacy_keys(synthetic: SyntheticSource | None, legacy: dict[str, Any]) -> SyntheticSource | None:
    """The source the deprecated keys ``legacy`` (non-None values only) describe, merged into ``synthetic``."""
    if _legacy_factory is None:
        raise RuntimeError("the deprecated data.* rollout keys need logo.synthetic: import logo.synthetic first")
    return _legacy_factory(synthetic, legacy)
