"""When synthetic rollout rounds run, with which policy, and what they log."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from logo.errors import LogoError
from logo.loggers import log_histogram


class RolloutRounds(Callback):
    """Runs the rollout rounds of the data module's synthetic source (e.g. ``ModelRollouts``) with the policy
    being trained, before each training batch that a round is due for, and logs each round's statistics as
    ``synthetic/*`` (u quantiles and histogram, effective sample size, rollout length, transitions/s, the
    sampler's share of wall time).

    ``LogoTrainer`` adds it to every fit; it does nothing when the data module has no source with rounds
    (a source with rounds has ``to_device``, ``due`` and ``run_round``). A round is due at training step k
    when k - (step of the last round) >= ``rollout_every``, or when the buffer is empty; it runs at the end
    of batch k - 1 (or at the start of an epoch), so it sees the policy after update k - 1, and never
    after the last batch of a fit. Rounds draw only from the source's own generator.

    The policy is the module's ``rollout_act(obs, avail_actions=, state=, generator=)`` (exploring, e.g.
    epsilon-greedy), or its greedy ``act``.
    """

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._round_if_due(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        last_of_epoch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        finished = 0 <= trainer.max_steps <= trainer.global_step
        if not (last_of_epoch or finished or trainer.should_stop):  # else: the next epoch's start (if any)
            self._round_if_due(trainer, pl_module)

    def _round_if_due(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        source = getattr(dm, "synthetic", None)
        if source is None or not all(hasattr(source, name) for name in ("to_device", "due", "run_round")):
            return
        device = pl_module.device
        source.to_device(device)
        step = trainer.global_step
        if not source.due(step):
            return
        stats = source.run_round(rollout_policy(pl_module), dm.storage_on(device), dm.train_indices_on(device),
                                 step)
        metrics = {f"synthetic/{k}": v for k, v in stats.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if hasattr(source, "uncertainty"):
            log_histogram(trainer.loggers, "synthetic/u_histogram", source.uncertainty(), step)


def rollout_policy(module: LightningModule):
    """``module``'s policy for rollouts: ``rollout_act``, else its greedy ``act`` (which takes no generator)."""
    policy = getattr(module, "rollout_act", None)
    if policy is not None:
        return policy
    if not hasattr(module, "act"):
        raise LogoError(f"data.synthetic is set but {type(module).__name__} cannot act in it: synthetic rollouts "
                        "need a policy with act() (e.g. DiscreteMACQL, BCPolicy)")

    def act(obs: torch.Tensor, avail_actions: torch.Tensor | None = None, state: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
        return module.act(obs, avail_actions=avail_actions, state=state)

    return act
