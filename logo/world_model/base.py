"""What every logo world model shares: units, the step API, validation metrics, checkpoints.

Subclasses (LOGO, the direct joint model, the ensemble) implement two methods on normalised
tensors:

* ``loss_parts(inputs, targets) -> dict`` with a ``loss`` entry (the sum that is optimised);
* ``predict(inputs, generator) -> Prediction`` (next values in normalised units and u).

Units. Observations, state and reward are standardised with the training split's statistics
(:func:`logo.data.statistics.compute_statistics`), copied into buffers at ``setup`` and so
saved in every checkpoint (:class:`logo.nn.DataUnits`, extended here by the reward and delta
normalisers, the observation mask and the data's bounding box). With ``predict_deltas`` the
networks predict the standardised one-step change ``(x' - x - mean_delta) / std_delta``;
:meth:`WorldModel.step` turns predictions back into raw environment units and
(``clip_to_data``) clips them to the training data's bounding box, as MOMA-PPO does for its
rollouts.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric, MeanSquaredError, MetricCollection, SpearmanCorrCoef, SumMetric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC
from torchmetrics.utilities import dim_zero_cat

from logo.checkpoint import load_recorded, record_class
from logo.dims import Batch
from logo.loggers import logs_this_step
from logo.metrics import reset_metrics
from logo.nn import DataUnits, Normalizer
from logo.world_model.model_rollout import StepResult

# validation sets are small enough for Spearman's exact buffers
warnings.filterwarnings("ignore", message=r".*SpearmanCorrcoef` will save all targets")


@dataclass
class Prediction:
    """A model's prediction in normalised units (standardised absolute next values, not deltas).

    ``*_std`` are the predicted standard deviations in the same units (used when sampling).
    """

    next_obs: torch.Tensor  # [B, N, O]
    next_state: torch.Tensor  # [B, S]
    reward: torch.Tensor  # [B]
    done_logit: torch.Tensor  # [B]
    avail_logit: torch.Tensor | None  # [B, N, n_actions]
    uncertainty: torch.Tensor  # [B]
    next_obs_std: torch.Tensor | None = None
    next_state_std: torch.Tensor | None = None
    reward_std: torch.Tensor | None = None


class WorldModel(DataUnits, LightningModule):
    """Base class of logo's world models (see the module docstring); not used on its own.

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked).
        action_kind: discrete or continuous actions (linked).
        action_size: number of discrete actions or continuous action dimension (linked).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        nll_beta: beta of the beta-NLL used for every Gaussian head (0: plain NLL; see ``gaussian_nll``).
        predict_deltas: predict standardised one-step changes instead of next values.
        clip_to_data: clip stepped observations, states and rewards to the training data's bounding box.
        sample_next: in ``step`` with a generator, sample next values from the predicted Gaussians
            instead of taking their means.
        open_loop_steps: horizons k of the open-loop validation error along dataset action sequences.
        open_loop_starts: start transitions used for the open-loop error (fixed, held-out).
    """

    checkpoint_kind: ClassVar[str] = "world-model"  # checkpoints record the class as ``logo_world_model_class``

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int,
                 lr: float = 1e-3, weight_decay: float = 1e-5, nll_beta: float = 0.5, predict_deltas: bool = True,
                 clip_to_data: bool = True, sample_next: bool = False,
                 open_loop_steps: Sequence[int] = (1, 5, 15), open_loop_starts: int = 256):
        super().__init__(n_agents, obs_dim, state_dim, action_kind, action_size)  # obs/state units, action bounds
        self.save_hyperparameters()  # collects the subclass's arguments too (Lightning walks the __init__ frames)
        self.reward_norm = Normalizer(())
        self.obs_delta_norm = Normalizer((n_agents, obs_dim))
        self.state_delta_norm = Normalizer((state_dim,))
        self.register_buffer("obs_mask", torch.ones(n_agents, obs_dim, dtype=torch.bool))
        for key, shape in (("obs", (n_agents, obs_dim)), ("state", (state_dim,)), ("reward", ())):
            self.register_buffer(f"{key}_low", torch.full(shape, -torch.inf))
            self.register_buffer(f"{key}_high", torch.full(shape, torch.inf))
        self.val_loss = MeanMetric()  # logged as a metric object in validation_step: Lightning computes and resets it
        # logged every validation epoch under the names the collection computes (val/mse_obs, ...); each metric
        # is updated with its own inputs, so no two share state (no compute groups)
        self.val_metrics = MetricCollection({
            "mse_obs": MeanSquaredError(), "mse_state": MeanSquaredError(), "mse_reward": MeanSquaredError(),
            "termination_accuracy": BinaryAccuracy(), "spearman_u_error": SpearmanCorrCoef(),
        }, compute_groups=False).clone(prefix="val/")
        # outside the collection, whose compute() would compute them always: logged only where defined, the AUROC
        # when the epoch saw both classes (counted by the two sums) and the legal-action accuracy for discrete actions
        self.val_termination_auroc = BinaryAUROC(thresholds=200)
        self.val_terminations = SumMetric()
        self.val_count = SumMetric()
        self.val_legal_accuracy = BinaryAccuracy()

    # ----------------------------------------------------------------- data and units
    def units_from(self, datamodule: Any) -> None:
        self.set_statistics(datamodule.statistics, torch.from_numpy(datamodule.dataset.arrays["obs_mask"]))

    def set_statistics(self, stats: Batch, obs_mask: torch.Tensor | None = None) -> None:
        """Copy normalisation statistics and bounds (see ``compute_statistics``) and the dataset's ``obs_mask``
        [N, obs_dim] (None: keep the current one) into the model's buffers."""
        super().set_statistics(stats)
        self.reward_norm.set_stats(stats["reward_mean"], stats["reward_std"])
        self.obs_delta_norm.set_stats(stats["obs_delta_mean"], stats["obs_delta_std"])
        self.state_delta_norm.set_stats(stats["state_delta_mean"], stats["state_delta_std"])
        if obs_mask is not None:
            self.obs_mask.copy_(obs_mask)
        for key in ("obs", "state", "reward"):
            getattr(self, f"{key}_low").copy_(stats[f"{key}_min"])
            getattr(self, f"{key}_high").copy_(stats[f"{key}_max"])

    def encode_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions [B, N] (int) or [B, N, A] -> [B, N, A] floats: one-hot, or scaled to [-1, 1]."""
        if self.discrete:
            return F.one_hot(actions.long(), self.action_size).float()
        return self.scale_actions(actions)

    def normalise_inputs(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> Batch:
        """Raw obs/state/actions -> ``obs [B, N, O]`` (padded features 0), ``state [B, S]``, ``actions [B, N, A]``."""
        return {"obs": self.obs_norm(obs) * self.obs_mask, "state": self.state_norm(state),
                "actions": self.encode_actions(actions)}

    def targets(self, batch: Batch) -> Batch:
        """Training targets in the units the networks predict (standardised deltas or next values)."""
        out = {"next_obs": self.obs_norm(batch["next_obs"]) * self.obs_mask,
               "next_state": self.state_norm(batch["next_state"]),
               "rewards": self.reward_norm(batch["rewards"]),
               "terminals": batch["terminals"]}
        if self.hparams.predict_deltas:
            out["obs_delta"] = self.obs_delta_norm(batch["next_obs"] - batch["obs"]) * self.obs_mask
            out["state_delta"] = self.state_delta_norm(batch["next_state"] - batch["state"])
        else:
            out["obs_delta"], out["state_delta"] = out["next_obs"], out["next_state"]
        if self.discrete:
            out["next_avail"] = batch["next_avail_actions"]
        return out

    def next_obs_from(self, obs_n: torch.Tensor, out: torch.Tensor, out_std: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network output for observations (delta units) -> standardised next observation (and its std)."""
        if not self.hparams.predict_deltas:
            return out * self.obs_mask, out_std
        scale = self.obs_delta_norm.std / self.obs_norm.std
        nxt = obs_n + (self.obs_delta_norm.mean / self.obs_norm.std + scale * out)
        return nxt * self.obs_mask, None if out_std is None else out_std * scale

    def obs_change(self, obs_n: torch.Tensor, next_obs_n: torch.Tensor) -> torch.Tensor:
        """Standardised one-step observation change (o' - o - mean_delta) / std_delta from standardised o and o'."""
        raw = (next_obs_n - obs_n) * self.obs_norm.std
        return self.obs_delta_norm(raw) * self.obs_mask

    def next_state_from(self, state_n: torch.Tensor, out: torch.Tensor, out_std: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network output for the state (delta units) -> standardised next state (and its std)."""
        if not self.hparams.predict_deltas:
            return out, out_std
        scale = self.state_delta_norm.std / self.state_norm.std
        nxt = state_n + (self.state_delta_norm.mean / self.state_norm.std + scale * out)
        return nxt, None if out_std is None else out_std * scale

    # ----------------------------------------------------------------- what subclasses implement
    def loss_parts(self, inputs: Batch, targets: Batch) -> Batch:
        raise NotImplementedError

    def predict(self, inputs: Batch, generator: torch.Generator | None = None) -> Prediction:
        raise NotImplementedError

    # ----------------------------------------------------------------- the step API
    @torch.no_grad()
    def step(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
             avail_actions: torch.Tensor | None = None, generator: torch.Generator | None = None) -> StepResult:
        """One batched model step in raw units (see :class:`logo.world_model.model_rollout.StepResult`).

        ``avail_actions`` is accepted for the protocol (legality is checked by the rollout routine);
        ``generator`` makes the step stochastic where the model is (ensemble member choice,
        ``sample_next``).
        """
        pred = self.predict(self.normalise_inputs(obs, state, actions), generator)
        next_obs_n, next_state_n, reward_n = pred.next_obs, pred.next_state, pred.reward
        if self.hparams.sample_next and generator is not None:
            def noisy(mean: torch.Tensor, std: torch.Tensor | None) -> torch.Tensor:
                if std is None:
                    return mean
                return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
            next_obs_n = noisy(next_obs_n, pred.next_obs_std)
            next_state_n = noisy(next_state_n, pred.next_state_std)
            reward_n = noisy(reward_n, pred.reward_std)
        next_obs = self.obs_norm.inverse(next_obs_n) * self.obs_mask
        next_state = self.state_norm.inverse(next_state_n)
        reward = self.reward_norm.inverse(reward_n)
        if self.hparams.clip_to_data:
            next_obs = next_obs.clamp(self.obs_low, self.obs_high)
            next_state = next_state.clamp(self.state_low, self.state_high)
            reward = reward.clamp(self.reward_low, self.reward_high)
        next_avail = None if pred.avail_logit is None else legal_from_logits(pred.avail_logit)
        return StepResult(next_obs=next_obs, next_state=next_state, reward=reward, done=pred.done_logit > 0,
                          next_avail=next_avail, uncertainty=pred.uncertainty)

    # ----------------------------------------------------------------- training
    def _parts(self, batch: Batch) -> tuple[Batch, Batch, Batch]:
        inputs = self.normalise_inputs(batch["obs"], batch["state"], batch["actions"])
        targets = self.targets(batch)
        return inputs, targets, self.loss_parts(inputs, targets)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        _, _, parts = self._parts(batch)
        if logs_this_step(self):
            for name, value in parts.items():
                self.log(f"train/{name}", value, prog_bar=name == "loss")
        return parts["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        inputs, targets, parts = self._parts(batch)
        n = len(batch["rewards"])
        self.val_loss.update(parts["loss"], n)
        self.log("val/loss", self.val_loss, prog_bar=True)
        pred = self.predict(inputs)
        mask = self.obs_mask.expand_as(targets["next_obs"])
        val = self.val_metrics
        val["mse_obs"].update(pred.next_obs[mask], targets["next_obs"][mask])
        val["mse_state"].update(pred.next_state, targets["next_state"])
        val["mse_reward"].update(pred.reward, targets["rewards"])
        done_prob, terminals = torch.sigmoid(pred.done_logit), targets["terminals"].long()
        val["termination_accuracy"].update(done_prob, terminals)
        self.val_termination_auroc.update(done_prob, terminals)
        self.val_terminations.update(terminals.sum())
        self.val_count.update(torch.tensor(float(n), device=self.device))
        if self.discrete and pred.avail_logit is not None:
            self.val_legal_accuracy.update(torch.sigmoid(pred.avail_logit), targets["next_avail"].long())
        error = (pred.next_state - targets["next_state"]).norm(dim=-1)
        val["spearman_u_error"].update(pred.uncertainty.float(), error.float())

    def on_validation_epoch_end(self) -> None:
        if self.val_count.update_count == 0:
            return
        metrics: dict[str, float | torch.Tensor] = self.val_metrics.compute()
        positives, count = float(self.val_terminations.compute()), float(self.val_count.compute())
        if 0 < positives < count:  # AUROC is undefined with one class only (e.g. MPE: no terminations)
            metrics["val/termination_auroc"] = self.val_termination_auroc.compute()
        if self.discrete and self.val_legal_accuracy.update_count:
            metrics["val/legal_accuracy"] = self.val_legal_accuracy.compute()
        for metric in (self.val_metrics, self.val_termination_auroc, self.val_terminations, self.val_count,
                       self.val_legal_accuracy):
            metric.reset()
        self.log_dict(metrics, sync_dist=True)  # ranks validate the same episodes: the mean is unchanged

    def validation_uncertainty(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """This rank's (u [M], true next-state error [M]) pairs of the validation epoch so far, the ones
        ``val/spearman_u_error`` is computed from; None before the first batch. The module's
        ``on_validation_epoch_end`` clears them: callbacks read them in theirs, which Lightning runs first."""
        spearman = self.val_metrics["spearman_u_error"]
        if not spearman.preds:
            return None
        return dim_zero_cat(spearman.preds), dim_zero_cat(spearman.target)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                foreach=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record_class(self, checkpoint)

    def on_fit_start(self) -> None:
        reset_metrics(self)  # metric states left by an earlier Trainer.validate are inference tensors


def legal_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits [..., n_actions] -> bool mask with at least one legal action per agent (the most likely one)."""
    legal = logits > 0
    best = F.one_hot(logits.argmax(-1), logits.shape[-1]).bool()
    return legal | (best & ~legal.any(-1, keepdim=True))


def load_world_model(path: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
    """Load the world model saved in checkpoint ``path``, in eval mode with gradients off."""
    model = load_recorded(path, WorldModel.checkpoint_kind, map_location)
    model.eval()
    model.requires_grad_(False)
    return model
