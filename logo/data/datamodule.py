"""The LightningDataModule shared by every logo stage.

Data path: the dataset is loaded once into memory (:class:`~logo.data.reader.OfflineDataset`);
the dataloader yields only step indices ``[B]``; Lightning moves them to the accelerator and
:meth:`OfflineMARLDataModule.on_after_batch_transfer` gathers the transitions from tensors that
already live there. Given a world-model checkpoint, the same hook runs rollout rounds of the
policy being trained (:class:`~logo.data.rollouts.ModelRollouts`) and mixes their
uncertainty-weighted transitions into training batches, without copying the dataset.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from logo.data.buffer import SamplingMode
from logo.data.reader import OfflineDataset, Storage, gather_transitions
from logo.data.rollouts import ModelRollouts, check_rollout_options
from logo.data.schema import LinkedDims
from logo.data.validate import open_dataset
from logo.dims import Batch
from logo.distributed import gather_objects, own_entry
from logo.errors import LogoError
from logo.loggers import log_histogram

# The loaders below run in the main process (num_workers=0), where __len__ is exact.
warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined")


class SyntheticSource(Protocol):
    """What the data module needs from a buffer of model-generated transitions."""

    def sample(self, batch_size: int) -> Batch | None:
        """``batch_size`` transitions with the keys of :func:`gather_transitions` plus ``weights [B]``,
        on the training device; ``None`` while the source is still empty."""


class RandomIndexBatches(IterableDataset):
    """``steps`` batches of ``batch_size`` indices drawn uniformly (with replacement) from ``indices``.

    The generator lives in the main process (``num_workers=0``), so its state can be saved and
    restored for exact resumption. Lightning fetches a batch ahead of the one being trained on, so
    the generator's state before each of the last few batches is kept: :meth:`state_before` gives
    the state a resumed run must start from, given how many batches were actually trained on.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, steps: int, seed: int):
        self.indices = indices
        self.batch_size = batch_size
        self.steps = steps
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0  # batches drawn so far, over all epochs
        self._history: deque[tuple[int, torch.Tensor]] = deque(maxlen=8)  # (batch number, state before it)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.steps):
            self._history.append((self.drawn, self.generator.get_state()))
            pos = torch.randint(len(self.indices), (self.batch_size,), generator=self.generator)
            self.drawn += 1
            yield self.indices[pos]

    def state_before(self, batch: int) -> torch.Tensor:
        """The generator's state just before batch number ``batch`` was (or will be) drawn."""
        if batch == self.drawn:
            return self.generator.get_state()
        for number, state in self._history:
            if number == batch:
                return state
        raise RuntimeError(f"batch sampler: no saved state for batch {batch} (drawn {self.drawn})")

    def restore(self, state: torch.Tensor, drawn: int) -> None:
        """Continue from ``state``, which precedes batch number ``drawn``."""
        self.generator.set_state(state)
        self.drawn = drawn
        self._history.clear()


class SequentialIndexBatches(IterableDataset):
    """Every index once, in order, in batches of at most ``batch_size`` (for validation)."""

    def __init__(self, indices: torch.Tensor, batch_size: int):
        self.indices = indices
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.indices.split(self.batch_size)


def _loader(batches: IterableDataset) -> DataLoader:
    """A loader of ready-made index batches. Its own (unused) generator keeps ``iter()`` from drawing its base
    seed from the global RNG, which would shift the losses' random numbers at every new epoch and make a
    run resumed from an epoch-end checkpoint draw differently from the uninterrupted one."""
    return DataLoader(batches, batch_size=None, generator=torch.Generator())


def sampler_seed(seed: int, rank: int) -> int:
    """Seed of a rank's training sampler: distinct per rank, so DDP ranks draw different batches."""
    return seed + 7919 * (rank + 1)


class OfflineMARLDataModule(LinkedDims, LightningDataModule):
    """Transitions from one logo zarr dataset, sampled from in-memory (on-device) tensors.

    Args:
        path: the dataset, a zarr group written by :class:`~logo.data.writer.DatasetWriter`.
        batch_size: transitions per training batch, per rank (DDP multiplies it by the world size).
        steps_per_epoch: training batches per epoch; offline RL counts updates, not passes over data.
        val_fraction: share of episodes held out for validation (whole episodes, never split).
        val_batch_size: transitions per validation batch.
        real_ratio: share of real transitions in a training batch once synthetic data exists (1: real only).
        seed: seeds the validation split and, offset by the rank, each rank's batch sampler and rollouts.
        world_model: checkpoint of a trained world model (LOGO, direct or ensemble) to roll the policy out in;
            None: real data only.
        sampling: how synthetic transitions are drawn: ``weighted`` (LOGO: proportional to
            exp(clip(C - u, low, high) / temperature)), ``uniform``, ``penalty`` (uniform, reward r - penalty * u)
            or ``none`` (real data only; the world model is not loaded).
        horizon: model steps per rollout (the paper's H = 15).
        rollout_every: training steps between rollout rounds.
        rollout_batch: start transitions (real, from the training split) per rollout round.
        buffer_rollouts: rollout rounds kept in the synthetic ring buffer.
        priority_center: C in the priority clip(C - u, low, high).
        priority_low: lower clip bound of the priority.
        priority_high: upper clip bound of the priority.
        temperature: synthetic draw weights are exp(priority / temperature).
        relative_uncertainty: divide u by its buffer mean before the priority (scale-free across world models).
        penalty: lambda of the ``penalty`` mode's reward r - lambda * u.
        checkpoint_buffer: save the synthetic buffer in checkpoints, so a resumed fit continues exactly
            (about rollout_batch * horizon * buffer_rollouts transitions per rank); False: a resumed fit
            starts with an empty buffer and rolls out at its first step.

    Example:
        >>> dm = OfflineMARLDataModule("spread.zarr", batch_size=256)  # doctest: +SKIP
        >>> dm.n_agents, dm.obs_dim, dm.action_kind  # doctest: +SKIP
        (3, 18, 'discrete')
    """

    def __init__(self, path: str, batch_size: int = 256, steps_per_epoch: int = 1000,
                 val_fraction: float = 0.1, val_batch_size: int = 4096, real_ratio: float = 0.5,
                 seed: int = 0, world_model: str | None = None, sampling: SamplingMode = "weighted",
                 horizon: int = 15, rollout_every: int = 250, rollout_batch: int = 512, buffer_rollouts: int = 20,
                 priority_center: float = 1.0, priority_low: float = -4.0, priority_high: float = 1.0,
                 temperature: float = 1.0, relative_uncertainty: bool = True, penalty: float = 1.0,
                 checkpoint_buffer: bool = True):
        super().__init__()
        check_rollout_options(sampling, horizon, rollout_every, rollout_batch, buffer_rollouts, priority_low,
                              priority_high, temperature)
        for name, value, low, high in (("batch_size", batch_size, 1, None),
                                       ("steps_per_epoch", steps_per_epoch, 1, None),
                                       ("val_batch_size", val_batch_size, 1, None),
                                       ("val_fraction", val_fraction, 0.0, 0.9),
                                       ("real_ratio", real_ratio, 0.0, 1.0)):
            if value < low or (high is not None and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise LogoError(f"data.{name}: expected a value {bound}, got {value}")
        self.save_hyperparameters()
        self.path = str(path)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.val_fraction = val_fraction
        self.val_batch_size = val_batch_size
        self.real_ratio = real_ratio
        self.seed = seed
        self.world_model = world_model
        self.sampling = sampling
        _, self.spec = open_dataset(self.path)  # attributes only: arrays are read in setup()
        self.synthetic: SyntheticSource | None = None
        self.dataset: OfflineDataset | None = None
        self.statistics: dict[str, torch.Tensor] = {}
        self._storage: Storage = {}
        self._device_storage: dict[torch.device, Storage] = {}
        self._train_batches: RandomIndexBatches | None = None
        self._resume: dict[str, Any] | None = None  # this rank's saved sampler/buffer state, until applied
        self._trained_batches = 0  # training batches handed to the model (not merely prefetched)
        self._device_indices: dict[torch.device, torch.Tensor] = {}

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            self._load()
        if stage == "fit" and self.synthetic is None and self.world_model is not None and self.sampling != "none" \
                and self.real_ratio < 1:
            hp = self.hparams
            self.synthetic = ModelRollouts(
                self.world_model, self.spec, horizon=hp.horizon, rollout_every=hp.rollout_every,
                rollout_batch=hp.rollout_batch, buffer_rollouts=hp.buffer_rollouts,
                seed=sampler_seed(self.seed, self.rank) + 1, mode=self.sampling, center=hp.priority_center,
                low=hp.priority_low, high=hp.priority_high, temperature=hp.temperature,
                relative_uncertainty=hp.relative_uncertainty, penalty=hp.penalty)
            self._apply_resume()

    def _load(self) -> None:
        self.dataset = OfflineDataset.load(self.path)
        self._storage = self.dataset.storage()
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
        return _loader(self._train_batches)

    def val_dataloader(self) -> DataLoader | list:
        if len(self.val_indices) == 0:
            return []
        return _loader(SequentialIndexBatches(self.val_indices, self.val_batch_size))

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
        if training and isinstance(self.synthetic, ModelRollouts):
            self.synthetic.to_device(batch.device)
            if self.synthetic.due(self.trainer.global_step):
                self._rollout_round(storage, batch.device)
        if training and self.synthetic is not None:
            n_real = int(round(len(batch) * self.real_ratio))
            synthetic = self.synthetic.sample(len(batch) - n_real) if n_real < len(batch) else None
            if synthetic is None:  # source still empty: this batch is real only
                n_real = len(batch)
        real = gather_transitions(storage, batch[:n_real])
        real["weights"] = torch.ones(n_real, device=batch.device)
        real["synthetic"] = torch.zeros(n_real, dtype=torch.bool, device=batch.device)
        if synthetic is None:
            return real
        synthetic = dict(synthetic)
        n_syn = len(synthetic["rewards"])
        synthetic["synthetic"] = torch.ones(n_syn, dtype=torch.bool, device=batch.device)
        if "uncertainty" in synthetic:  # real rows have u = 0
            real["uncertainty"] = torch.zeros(n_real, device=batch.device)
        missing = set(real) - set(synthetic)
        if missing:
            raise KeyError(f"synthetic batch lacks keys {sorted(missing)}")
        return {k: torch.cat([real[k], synthetic[k]]) for k in real}

    def _rollout_round(self, storage: Storage, device: torch.device) -> None:
        """One round of rollouts of the policy being trained; its statistics go to the loggers as ``synthetic/*``."""
        module = self.trainer.lightning_module
        policy = getattr(module, "rollout_act", None)
        if policy is None:
            if not hasattr(module, "act"):
                raise LogoError(f"data.world_model is set but {type(module).__name__} cannot act in it: "
                                "synthetic rollouts need a policy with act() (e.g. DiscreteMACQL, BCPolicy)")
            def policy(obs, avail_actions=None, state=None, generator=None):
                return module.act(obs, avail_actions=avail_actions, state=state)
        if device not in self._device_indices:
            self._device_indices[device] = self.train_indices.to(device)
        step = self.trainer.global_step
        stats = self.synthetic.run_round(policy, storage, self._device_indices[device], step)
        metrics = {f"synthetic/{k}": v for k, v in stats.items()}
        for logger in self.trainer.loggers:
            logger.log_metrics(metrics, step=step)
        log_histogram(self.trainer.loggers, "synthetic/u_histogram", self.synthetic.buffer.uncertainty(), step)

    def state_dict(self) -> dict[str, Any]:
        """Normalisation statistics, plus each rank's batch-sampler state and synthetic buffer (see
        ``checkpoint_buffer``), gathered from every rank (saved in checkpoints)."""
        state: dict[str, Any] = {"statistics": {k: v.clone() for k, v in self.statistics.items()}}
        if self._train_batches is None and self.synthetic is None:  # not fitting
            return state
        mine: dict[str, Any] = {"trained_batches": self._trained_batches, "sampler_rng": None, "synthetic": None}
        if self._train_batches is not None:
            mine["sampler_rng"] = self._train_batches.state_before(self._trained_batches)
        if isinstance(self.synthetic, ModelRollouts):
            mine["synthetic"] = self.synthetic.state_dict(with_buffer=self.hparams.checkpoint_buffer)
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
        """Hand the saved state to the batch sampler and the rollouts, each once, as soon as it exists: Lightning
        may restore the checkpoint before or after ``setup`` and ``train_dataloader`` create them."""
        resume = self._resume or {}
        if self._train_batches is not None and resume.get("sampler_rng") is not None:
            self._train_batches.restore(resume.pop("sampler_rng"), resume["trained_batches"])
            self._trained_batches = resume["trained_batches"]
        if isinstance(self.synthetic, ModelRollouts) and resume.get("synthetic") is not None:
            self.synthetic.load_state_dict(resume.pop("synthetic"))


def compute_statistics(dataset: OfflineDataset, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """Normalisation statistics over the steps ``indices`` (the training split).

    Observations get per-agent, per-feature statistics ``[N, obs_dim]`` (agents may observe
    different things); padded features get mean 0 and std 1; constant features get std 1.
    Besides mean/std of observations, state and reward, it holds their minimum and maximum
    (the data's bounding box, for clipping model rollouts) and mean/std of the one-step changes
    ``o' - o`` and ``s' - s`` (world models predict those); a change that is always zero gets
    std 1e-3 times its feature's std.
    """
    mask = torch.from_numpy(dataset.arrays["obs_mask"])
    # one pass over the split in chunks of steps, gathered like training batches (next values exact at
    # episode ends): float64 sums and running min/max, no full-size temporary copy of the split
    storage = dataset.storage()
    moments = {key: _Moments() for key in ("obs", "state", "reward", "obs_delta", "state_delta")}
    for start in range(0, len(indices), 1 << 16):
        batch = gather_transitions(storage, torch.from_numpy(indices[start:start + (1 << 16)]))
        moments["obs"].update(batch["obs"].numpy())
        moments["state"].update(batch["state"].numpy())
        moments["reward"].update(batch["rewards"].numpy())
        moments["obs_delta"].update((batch["next_obs"] - batch["obs"]).numpy())
        moments["state_delta"].update((batch["next_state"] - batch["state"]).numpy())

    def _masked(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean * mask, torch.where(mask, std, torch.ones_like(std))

    stats: dict[str, torch.Tensor] = {}
    for key in ("obs", "state", "reward"):
        mean, std = moments[key].mean_std()
        stats[f"{key}_mean"], stats[f"{key}_std"] = _masked(mean, std) if key == "obs" else (mean, std)
        stats[f"{key}_min"], stats[f"{key}_max"] = moments[key].low, moments[key].high
    # a feature that never changes gets a tiny change scale (not 1): a model's error on it then stays tiny in
    # the feature's own units instead of being amplified by 1 / feature std
    stats["obs_delta_mean"], stats["obs_delta_std"] = _masked(*moments["obs_delta"].mean_std(1e-3 * stats["obs_std"]))
    stats["state_delta_mean"], stats["state_delta_std"] = moments["state_delta"].mean_std(1e-3 * stats["state_std"])
    spec = dataset.spec
    if not spec.discrete:
        stats["action_low"] = torch.tensor(spec.action_low, dtype=torch.float32)
        stats["action_high"] = torch.tensor(spec.action_high, dtype=torch.float32)
    return stats


class _Moments:
    """Running float64 sum, sum of squares, minimum and maximum over the leading axis of chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.total = self.total_sq = None
        self.low = self.high = None

    def update(self, part: np.ndarray) -> None:
        low, high = torch.as_tensor(part.min(0)), torch.as_tensor(part.max(0))
        part = part.astype(np.float64)
        if self.total is None:
            self.total, self.total_sq, self.low, self.high = part.sum(0), np.square(part).sum(0), low, high
        else:
            self.total += part.sum(0)
            self.total_sq += np.square(part).sum(0)
            self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)
        self.count += len(part)

    def mean_std(self, fallback: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std; std below 1e-6 (a constant feature) is replaced by ``fallback``."""
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.total_sq / self.count - mean ** 2, 0.0))
        std = np.where(std < 1e-6, np.asarray(fallback, np.float64), std)
        return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
