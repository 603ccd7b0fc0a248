"""Synthetic data for the policy stage: world-model rollout rounds, their buffer and its samplers.

Above ``world_model`` (it rolls a frozen world model out) and beside ``policy`` (it calls the policy
being trained only through the callable the :class:`~logo.callbacks.RolloutRounds` callback hands
it); it plugs into the data module as its :class:`~logo.data.sources.SyntheticSource`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from logo.data.sources import SyntheticSource, register_legacy_factory
from logo.synthetic.buffer import SyntheticBuffer
from logo.synthetic.rounds import ModelRollouts
from logo.synthetic.samplers import SamplingOptions, UncertaintyWeightedSampler, UniformSampler
from logo.synthetic.storage import RingWriter, TensorStorage

__all__ = ["ModelRollouts", "RingWriter", "SamplingOptions", "SyntheticBuffer", "TensorStorage",
           "UncertaintyWeightedSampler", "UniformSampler"]

_SAMPLING_KEYS = ("priority_center", "priority_low", "priority_high", "temperature", "relative_uncertainty",
                  "penalty")


def _from_legacy_keys(synthetic: SyntheticSource | None, legacy: dict[str, Any]) -> SyntheticSource | None:
    """The source the data module's deprecated flat keys describe, as they did before (one release only):
    ``sampling: none`` or no world model means real data only; other keys override ``synthetic``'s options."""
    legacy = dict(legacy)
    mode = legacy.pop("sampling", None)
    if mode == "none":
        return None
    sampling = {key: legacy.pop(key) for key in _SAMPLING_KEYS if key in legacy}
    if mode is not None:
        sampling["mode"] = mode
    if synthetic is None:
        if "world_model" not in legacy:  # as before: no world model, no rollouts
            return None
        synthetic = ModelRollouts(legacy["world_model"])
    if not isinstance(synthetic, ModelRollouts):
        raise TypeError(f"data.synthetic is a {type(synthetic).__name__}: the deprecated data.* rollout keys "
                        f"{sorted(legacy)} only apply to ModelRollouts")
    return ModelRollouts(world_model=legacy.get("world_model", synthetic.path),
                         horizon=legacy.get("horizon", synthetic.horizon),
                         rollout_every=legacy.get("rollout_every", synthetic.rollout_every),
                         rollout_batch=legacy.get("rollout_batch", synthetic.rollout_batch),
                         buffer_rollouts=legacy.get("buffer_rollouts", synthetic.buffer_rollouts),
                         sampling=dataclasses.replace(synthetic.sampling, **sampling),
                         checkpoint_buffer=legacy.get("checkpoint_buffer", synthetic.checkpoint_buffer))


register_legacy_factory(_from_legacy_keys)
