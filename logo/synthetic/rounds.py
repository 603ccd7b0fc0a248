"""Synthetic data for the policy stage: the current policy acting in a frozen world model.

:class:`ModelRollouts` is a :class:`~logo.data.sources.SyntheticSource`: pass it to the data module
as ``data.synthetic`` (``class_path: ModelRollouts`` in YAML). Its rounds are driven by the
:class:`~logo.callbacks.RolloutRounds` callback (which ``LogoTrainer`` adds): every
``rollout_every`` training steps a round draws ``rollout_batch`` start transitions from the real
training split, rolls the policy being trained out in the world model for up to ``horizon`` steps
(:func:`logo.world_model.model_rollout.rollout`) and appends the transitions, each with its uncertainty u, to a
:class:`~logo.synthetic.buffer.SyntheticBuffer` holding the last ``buffer_rollouts`` rounds.
Training batches draw their synthetic share from it.

The world model is loaded with ``load_from_checkpoint`` at ``setup``, frozen (eval mode, no
gradients) and held here, on the data side: it is never part of the policy's hyperparameters,
state_dict or optimizer. Each DDP rank rolls out with its own generator and keeps its own buffer;
nothing here communicates across ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from logo.data.reader import Storage, gather_transitions
from logo.data.schema import DatasetSpec
from logo.data.sources import SyntheticSource
from logo.dims import Batch, linked_dims
from logo.errors import LogoError, check_fits
from logo.synthetic.buffer import SyntheticBuffer
from logo.synthetic.samplers import SamplingOptions
from logo.world_model import WorldModel, load_world_model, rollout


class ModelRollouts(SyntheticSource):
    """Rollout rounds into an uncertainty-weighted buffer (see the module docstring).

    Args:
        world_model: path of a world-model checkpoint written by ``logo fit`` (loaded at ``setup``).
        horizon: model steps per rollout (H; the paper's default is 15).
        rollout_every: training steps between rollout rounds (a round also runs whenever the buffer is empty).
        rollout_batch: start transitions (real, from the training split) per round.
        buffer_rollouts: rounds kept in the buffer; capacity = rollout_batch * horizon * buffer_rollouts.
        sampling: how training batches draw from the buffer (LOGO's weighting or an ablation).
        stop_uncertainty: end a branch before its first step whose u exceeds this multiple of the round's
            first-step mean u (:func:`~logo.world_model.model_rollout.rollout`); None: only terminations end branches.
        checkpoint_buffer: save the buffer in checkpoints, so a resumed fit continues exactly (about
            rollout_batch * horizon * buffer_rollouts transitions per rank); False: a resumed fit starts with
            an empty buffer and rolls out at its first step.

    Example:
        >>> source = ModelRollouts("runs/wm/checkpoints/best.ckpt", horizon=5)  # doctest: +SKIP
        >>> dm = OfflineMARLDataModule("spread.zarr", synthetic=source)  # doctest: +SKIP
    """

    def __init__(self, world_model: str, horizon: int = 15, rollout_every: int = 250, rollout_batch: int = 512,
                 buffer_rollouts: int = 20, sampling: SamplingOptions | None = None, checkpoint_buffer: bool = True,
                 stop_uncertainty: float | None = None):
        for name, value in (("horizon", horizon), ("rollout_every", rollout_every),
                            ("rollout_batch", rollout_batch), ("buffer_rollouts", buffer_rollouts)):
            if value < 1:
                raise LogoError(f"data.synthetic.{name}: expected a positive integer, got {value}")
        if stop_uncertainty is not None and stop_uncertainty <= 0:
            raise LogoError(f"data.synthetic.stop_uncertainty: expected a positive multiple of the mean u or null, "
                            f"got {stop_uncertainty}")
        self.stop_uncertainty = stop_uncertainty
        self.path = str(world_model)
        self.horizon, self.rollout_every, self.rollout_batch = horizon, rollout_every, rollout_batch
        self.buffer_rollouts, self.checkpoint_buffer = buffer_rollouts, checkpoint_buffer
        self.sampling = sampling if sampling is not None else SamplingOptions()
        self.capacity = rollout_batch * horizon * buffer_rollouts
        self.model: WorldModel | None = None
        self.seed = 0
        self.buffer: SyntheticBuffer | None = None
        self.generator: torch.Generator | None = None
        self.last_round: int | None = None  # training step of the last round
        self.rounds = 0
        self.stats: dict[str, float] = {}
        self._sample_seconds = 0.0
        self._clock = time.perf_counter()
        self._pending: dict[str, Any] | None = None  # state from a checkpoint, applied once on a device

    def setup(self, spec: DatasetSpec, seed: int) -> None:
        """Load the world model (once) and check that it was trained on data of ``spec``'s dims."""
        self.seed = seed
        if self.model is not None:
            return
        try:
            model = load_world_model(self.path)
        except LogoError as exc:  # name the option at fault
            raise LogoError(f"data.synthetic.world_model: {exc}") from exc
        check_fits(model.hparams, linked_dims(spec), f"data.synthetic.world_model {self.path}",
                   f"dataset of {spec.scenario}", ("checkpoint", "dataset"),
                   hint="pass a world model trained on this dataset (stage one: `logo fit` of a world-model config)")
        self.model = model

    def to_device(self, device: torch.device) -> None:
        """Move the world model, generator and buffer to ``device`` (first call: create them there)."""
        if self.generator is not None and self.generator.device == device and self._pending is None:
            return
        self.model.to(device)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self.buffer = SyntheticBuffer(self.capacity, self.sampling, generator=self.generator)
        if self._pending is not None:
            state, self._pending = self._pending, None
            self.generator.set_state(state["generator"])
            if state.get("buffer") is not None:
                self.buffer.load_state_dict(state["buffer"])
            self.rounds = state["rounds"]
            # without the buffer the next step is due for a round anyway (the buffer is empty)
            self.last_round = state["last_round"]

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to continue the same rollouts: generator, round count and (with
        ``checkpoint_buffer``) the buffer, all on the CPU."""
        if self.generator is None:  # no round has run yet
            return dict(self._pending) if self._pending is not None else {}
        return {"generator": self.generator.get_state(), "rounds": self.rounds, "last_round": self.last_round,
                "buffer": self.buffer.state_dict() if self.checkpoint_buffer else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; applied when the rollouts first meet their device."""
        if state:
            self._pending = dict(state)
            self.generator = None

    def due(self, step: int) -> bool:
        """Whether a round should run before the batch of training step ``step``."""
        return self.buffer is None or len(self.buffer) == 0 or self.last_round is None \
            or step - self.last_round >= self.rollout_every

    @torch.no_grad()
    def run_round(self, policy: Callable[..., torch.Tensor], storage: Storage, indices: torch.Tensor,
                  step: int) -> dict[str, float]:
        """Roll ``policy`` out from ``rollout_batch`` random steps of ``indices`` (on ``storage``'s device)."""
        device = indices.device
        self.to_device(device)
        pick = torch.randint(len(indices), (self.rollout_batch,), generator=self.generator, device=device)
        start = gather_transitions(storage, indices[pick])
        started = time.perf_counter()
        result = rollout(self.model, lambda obs, avail_actions=None, state=None: policy(
            obs, avail_actions=avail_actions, state=state, generator=self.generator), start, self.horizon,
            generator=self.generator, stop_uncertainty=self.stop_uncertainty)
        seconds = time.perf_counter() - started
        transitions = result.transitions()
        self.buffer.add(transitions)
        self.last_round, self.rounds = step, self.rounds + 1
        now = time.perf_counter()
        wall, self._clock = now - self._clock, now
        self.stats = {**self.buffer.summary(), "round_transitions": float(len(transitions["uncertainty"])),
                      "rollout_length": float(result.alive.sum(0).float().mean()),
                      "terminated_fraction": float((result.terminals * result.alive).sum() / self.rollout_batch),
                      "rollout_transitions_per_s": len(transitions["uncertainty"]) / max(seconds, 1e-9),
                      "sampler_share": self._sample_seconds / max(wall, 1e-9)}
        self._sample_seconds = 0.0
        return self.stats

    def uncertainty(self) -> torch.Tensor:
        """u of every buffered transition [M] (for the u histogram)."""
        return self.buffer.uncertainty() if self.buffer is not None else torch.empty(0)

    def sample(self, batch_size: int, device: torch.device) -> Batch | None:
        """``batch_size`` synthetic transitions on ``device``, or None while the buffer is empty."""
        if self.buffer is None and self.rounds == 0 and self._pending is None:
            raise LogoError("data.synthetic: no rollout round has run before the first training batch; rounds are "
                            "run by the logo.callbacks.RolloutRounds callback: add it to the Trainer's callbacks "
                            "(LogoTrainer, which `logo fit` uses, adds it itself)")
        self.to_device(device)
        started = time.perf_counter()
        batch = self.buffer.sample(batch_size)
        self._sample_seconds += time.perf_counter() - started
        return batch
