"""The LightningDataModule shared by every logo stage: split, statistics and index batches.

Data path: the dataset is loaded once into memory (:class:`~logo.data.reader.OfflineDataset`);
the dataloader yields only step indices ``[B]`` (:mod:`logo.data.samplers`); Lightning moves them
to the accelerator and :meth:`OfflineMARLDataModule.on_after_batch_transfer` gathers the
transitions from tensors that already live there. Given a synthetic source (``data.synthetic``,
e.g. :class:`logo.synthetic.ModelRollouts`), the same hook mixes its transitions into training
batches, without copying the dataset. The data module never calls a model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from logo.data.reader import OfflineDataset, Storage, gather_transitions
from logo.data.samplers import RandomIndexBatches, SequentialIndexBatches, loader, sampler_seed
from logo.data.schema import LinkedDims
from logo.data.sources import LEGACY_ROLLOUT_KEYS, SyntheticSource, source_from_legacy_keys
from logo.data.statistics import compute_statistics
from logo.data.validate import open_dataset
from logo.dims import Batch
from logo.distributed import gather_objects, own_entry
from logo.errors import LogoError


class OfflineMARLDataModule(LinkedDims, LightningDataModule):
    """Transitions from one logo zarr dataset, sampled from in-memory (on-device) tensors.

    Args:
        path: the dataset, a zarr group written by :class:`~logo.data.writer.DatasetWriter`.
        batch_size: transitions per training batch, per rank (DDP multiplies it by the world size).
        steps_per_epoch: training batches per epoch; offline RL counts updates, not passes over data.
        val_fraction: share of episodes held out for validation (whole episodes, never split).
        val_batch_size: transitions per validation batch.
        real_ratio: share of real transitions in a training batch once synthetic data exists (1: real only).
        seed: seeds the validation split and, offset by the rank, each rank's batch sampler and synthetic source.
        synthetic: where synthetic training transitions come from, e.g. ``ModelRollouts`` (LOGO's rollouts of
            the policy in a world model, uncertainty-weighted); None: real data only.
        return_gamma: discount of the return-to-go every real row then carries (``returns_to_go [B]``; NaN on
            synthetic rows), the yardstick of the critic's Q of the data's actions (``train/rtg_real``);
            None: not computed.
        world_model: deprecated, use ``synthetic.init_args.world_model``.
        sampling: deprecated, use ``synthetic.init_args.sampling.mode`` (``none``: ``synthetic: null``).
        horizon: deprecated, use ``synthetic.init_args.horizon``.
        rollout_every: deprecated, use ``synthetic.init_args.rollout_every``.
        rollout_batch: deprecated, use ``synthetic.init_args.rollout_batch``.
        buffer_rollouts: deprecated, use ``synthetic.init_args.buffer_rollouts``.
        priority_center: deprecated, use ``synthetic.init_args.sampling.priority_center``.
        priority_low: deprecated, use ``synthetic.init_args.sampling.priority_low``.
        priority_high: deprecated, use ``synthetic.init_args.sampling.priority_high``.
        temperature: deprecated, use ``synthetic.init_args.sampling.temperature``.
        relative_uncertainty: deprecated, use ``synthetic.init_args.sampling.relative_uncertainty``.
        penalty: deprecated, use ``synthetic.init_args.sampling.penalty``.
        checkpoint_buffer: deprecated, use ``synthetic.init_args.checkpoint_buffer``.

    Example:
        >>> dm = OfflineMARLDataModule("spread.zarr", batch_size=256)  # doctest: +SKIP
        >>> dm.n_agents, dm.obs_dim, dm.action_kind  # doctest: +SKIP
        (3, 18, 'discrete')
    """

    def __init__(self, path: str, batch_size: int = 256, steps_per_epoch: int = 1000,
                 val_fraction: float = 0.1, val_batch_size: int = 4096, real_ratio: float = 0.5,
                 seed: int = 0, synthetic: SyntheticSource | None = None, return_gamma: float | None = None,
                 world_model: str | None = None, sampling: str | None = None, horizon: int | None = None,
                 rollout_every: int | None = None, rollout_batch: int | None = None,
                 buffer_rollouts: int | None = None, priority_center: float | None = None,
                 priority_low: float | None = None, priority_high: float | None = None,
                 temperature: float | None = None, relative_uncertainty: bool | None = None,
                 penalty: float | None = None, checkpoint_buffer: bool | None = None):
        super().__init__()
        for name, value, low, high in (("batch_size", batch_size, 1, None),
                                       ("steps_per_epoch", steps_per_epoch, 1, None),
                                       ("val_batch_size", val_batch_size, 1, None),
                                       ("val_fraction", val_fraction, 0.0, 0.9),
                                       ("real_ratio", real_ratio, 0.0, 1.0),
                                       ("return_gamma", 0.0 if return_gamma is None else return_gamma, 0.0, 1.0)):
            if value < low or (high is not None and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise LogoError(f"data.{name}: expected a value {bound}, got {value}")
        passed = locals()
        legacy = {key: passed[key] for key in LEGACY_ROLLOUT_KEYS if passed[key] is not None}
        if legacy:
            moved = "; ".join(f"data.{key} -> data.{LEGACY_ROLLOUT_KEYS[key]}" for key in legacy)
            warnings.warn(f"deprecated data module keys (they will be removed in the next release): {moved}",
                          FutureWarning, stacklevel=2)
            synthetic = source_from_legacy_keys(synthetic, legacy)
        self.save_hyperparameters(ignore=["synthetic", *LEGACY_ROLLOUT_KEYS])
        self.path = str(path)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.val_fraction = val_fraction
        self.val_batch_size = val_batch_size
        self.real_ratio = real_ratio
        self.seed = seed
        self.return_gamma = return_gamma
        _, self.spec = open_dataset(self.path)  # attributes only: arrays are read in setup()
        # a source is only used when batches have room for it
        self.synthetic: SyntheticSource | None = synthetic if real_ratio < 1 else None
        self.dataset: OfflineDataset | None = None
        self.statistics: dict[str, torch.Tensor] = {}
        self._storage: Storage = {}
        self._device_storage: dict[torch.device, Storage] = {}
        self._device_indices: dict[torch.device, torch.Tensor] = {}
        self._train_batches: RandomIndexBatches | None = None
        self._resume: dict[str, Any] | None = None  # this rank's saved sampler/source state, until applied
        self._trained_batches = 0  # training batches handed to the model (not merely prefetched)
        self._source_ready = False

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            self._load()
        if stage == "fit" and self.synthetic is not None and not self._source_ready:
            self.synthetic.setup(self.spec, seed=sampler_seed(self.seed, self.rank) + 1)
            self._source_ready = True
            self._apply_resume()

    def _load(self) -> None:
        self.dataset = OfflineDataset.load(self.path)
        self._storage = self.dataset.storage()
        if self.return_gamma is not None:
            self._storage["returns_to_go"] = torch.from_numpy(self.dataset.returns_to_go(self.return_gamma))
        n_eps = self.dataset.n_episodes
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(n_eps)
        # at least one validation episode when asked for any, at least one training episode always
        n_val = min(max(round(n_eps * self.val_fraction), int(self.val_fraction > 0)), n_eps - 1)
        self.val_episodes = np.sort(order[:n_val])
        self.train_episodes = np.sort(order[n_val:])
        self.train_indices = torch.from_numpy(self.dataset.steps_of(self.train_episodes))
        self.val_indices = torch.from_numpy(self.dataset.steps_of(self.val_episodes))
        self.statistics = compute_statistics(self.dataset, self.train_indices.numpy())

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        if self._train_batches is None:
            self._train_batches = RandomIndexBatches(self.train_indices, self.batch_size, self.steps_per_epoch,
                                                     seed=sampler_seed(self.seed, self.rank))
            self._apply_resume()
        return loader(self._train_batches)

    def val_dataloader(self) -> DataLoader | list:
        if len(self.val_indices) == 0:
            return []
        return loader(SequentialIndexBatches(self.val_indices, self.val_batch_size))

    def test_dataloader(self) -> DataLoader | list:
        """The held-out episodes (evaluation in the real environment is a separate routine)."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader | list:
        """The held-out episodes, in order."""
        return self.val_dataloader()

    def storage_on(self, device: torch.device) -> Storage:
        """The dataset's tensors on ``device``, moved there once and cached."""
        if device not in self._device_storage:
            self._device_storage[device] = {k: v.to(device) for k, v in self._storage.items()}
        return self._device_storage[device]

    def train_indices_on(self, device: torch.device) -> torch.Tensor:
        """The training split's step indices on ``device``, moved there once and cached (rollout start states)."""
        if device not in self._device_indices:
            self._device_indices[device] = self.train_indices.to(device)
        return self._device_indices[device]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Batch:
        """Turn a batch of indices [B] into transitions, mixing in synthetic ones while training."""
        if not isinstance(batch, torch.Tensor):  # already a transition batch (e.g. from a custom loader)
            return batch
        storage = self.storage_on(batch.device)
        training = self.trainer is not None and self.trainer.training
        n_real = len(batch)
        synthetic = None
        if training:
            self._trained_batches += 1
        if training and self.synthetic is not None:
            n_real = int(round(len(batch) * self.real_ratio))
            synthetic = self.synthetic.sample(len(batch) - n_real, batch.device) if n_real < len(batch) else None
            if synthetic is None:  # source still empty: this batch is real only
                n_real = len(batch)
        real = gather_transitions(storage, batch[:n_real])
        if "returns_to_go" in storage:
            real["returns_to_go"] = storage["returns_to_go"][batch[:n_real]]
        real["weights"] = torch.ones(n_real, device=batch.device)
        real["synthetic"] = torch.zeros(n_real, dtype=torch.bool, device=batch.device)
        if synthetic is None:
            return real
        synthetic = dict(synthetic)
        n_syn = len(synthetic["rewards"])
        synthetic["synthetic"] = torch.ones(n_syn, dtype=torch.bool, device=batch.device)
        if "uncertainty" in synthetic:  # real rows have u = 0
            real["uncertainty"] = torch.zeros(n_real, device=batch.device)
        if "returns_to_go" in real:  # the data's return is unknown for a synthetic row
            synthetic["returns_to_go"] = torch.full((n_syn,), torch.nan, device=batch.device)
        missing = set(real) - set(synthetic)
        if missing:
            raise KeyError(f"synthetic batch lacks keys {sorted(missing)}")
        return {k: torch.cat([real[k], synthetic[k]]) for k in real}

    def state_dict(self) -> dict[str, Any]:
        """Normalisation statistics, plus each rank's batch-sampler state and synthetic source state (for
        ``ModelRollouts``: its generator and, with ``checkpoint_buffer``, its buffer), gathered from every rank
        (saved in checkpoints)."""
        state: dict[str, Any] = {"statistics": {k: v.clone() for k, v in self.statistics.items()}}
        if self._train_batches is None and self.synthetic is None:  # not fitting
            return state
        mine: dict[str, Any] = {"trained_batches": self._trained_batches, "sampler_rng": None, "synthetic": None}
        if self._train_batches is not None:
            mine["sampler_rng"] = self._train_batches.state_before(self._trained_batches)
        if self.synthetic is not None:
            mine["synthetic"] = self.synthetic.state_dict()
        state["per_rank"] = gather_objects(mine)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "per_rank" in state_dict:
            mine = own_entry(state_dict["per_rank"], "data module (batch sampler, synthetic buffer)")
            self._resume = dict(mine) if mine else None
        elif state_dict.get("sampler_rng") is not None:  # checkpoints written before per-rank state
            self._resume = {"sampler_rng": state_dict["sampler_rng"], "trained_batches": 0, "synthetic": None}
        self._apply_resume()

    def _apply_resume(self) -> None:
        """Hand the saved state to the batch sampler and the synthetic source, each once, as soon as it is set
        up: Lightning may restore the checkpoint before or after ``setup`` and ``train_dataloader``."""
        resume = self._resume or {}
        if self._train_batches is not None and resume.get("sampler_rng") is not None:
            self._train_batches.restore(resume.pop("sampler_rng"), resume["trained_batches"])
            self._trained_batches = resume["trained_batches"]
        if self._source_ready and resume.get("synthetic") is not None:
            self.synthetic.load_state_dict(resume.pop("synthetic"))
