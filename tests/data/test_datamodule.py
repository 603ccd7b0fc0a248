"""The shared data module: episode split, statistics, batches, synthetic mixing, per-rank seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from logo.data import OfflineDataset, OfflineMARLDataModule, gather_transitions
from logo.data.samplers import RandomIndexBatches, sampler_seed
from logo.data.sources import SyntheticSource
from logo.data.statistics import compute_statistics
from logo.errors import DatasetError, LogoError
from logo.policy import BCPolicy


def _setup(path, **kwargs) -> OfflineMARLDataModule:
    dm = OfflineMARLDataModule(str(path), **kwargs)
    dm.setup("fit")
    return dm


def test_dims_come_from_attributes_without_reading_arrays(discrete_dataset, continuous_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset))
    assert dm.dataset is None  # nothing loaded yet: the CLI can link dims before setup
    assert (dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size) == (3, 12, 12, "discrete", 5)
    dm = OfflineMARLDataModule(str(continuous_dataset))
    assert (dm.action_kind, dm.action_size) == ("continuous", 2)


def test_validation_split_is_by_whole_episodes(discrete_dataset):
    dm = _setup(discrete_dataset, val_fraction=0.2, seed=3)
    data = dm.dataset
    assert len(dm.val_episodes) == 12 and len(dm.train_episodes) == 48
    assert not set(dm.val_episodes) & set(dm.train_episodes)
    ids = data.episode_ids()
    assert set(ids[dm.val_indices.numpy()]) == set(dm.val_episodes)
    assert len(dm.train_indices) + len(dm.val_indices) == data.n_transitions
    # the same seed gives the same split, another seed another one
    assert np.array_equal(_setup(discrete_dataset, val_fraction=0.2, seed=3).val_episodes, dm.val_episodes)
    assert not np.array_equal(_setup(discrete_dataset, val_fraction=0.2, seed=4).val_episodes, dm.val_episodes)


def test_statistics_match_numpy_on_the_training_split(discrete_dataset):
    dm = _setup(discrete_dataset, val_fraction=0.2)
    obs = dm.dataset.arrays["observations"][dm.train_indices.numpy()]
    np.testing.assert_allclose(dm.statistics["obs_mean"].numpy(), obs.mean(0), atol=1e-5)
    std = obs.std(0)
    np.testing.assert_allclose(dm.statistics["obs_std"].numpy(), np.where(std < 1e-6, 1, std), rtol=1e-4)
    rewards = dm.dataset.arrays["rewards"][dm.train_indices.numpy()]
    assert dm.statistics["reward_mean"].item() == pytest.approx(rewards.mean(), rel=1e-5)


def test_statistics_ignore_padding_and_constant_features(discrete_dataset):
    data = OfflineDataset.load(discrete_dataset)
    data.arrays["obs_mask"] = data.arrays["obs_mask"].copy()
    data.arrays["obs_mask"][1, -2:] = False  # pretend agent 1 has two padded features
    data.arrays["observations"] = data.arrays["observations"].copy()
    data.arrays["observations"][:, 1, -2:] = 0.0
    stats = compute_statistics(data, np.arange(data.n_transitions))
    assert stats["obs_mean"][1, -2:].tolist() == [0.0, 0.0] and stats["obs_std"][1, -2:].tolist() == [1.0, 1.0]


def test_training_batches_are_gathered_transitions_with_weights(discrete_dataset):
    dm = _setup(discrete_dataset, batch_size=32, steps_per_epoch=3)
    loader = dm.train_dataloader()
    assert len(loader) == 3
    idx = next(iter(loader))
    assert idx.shape == (32,) and idx.dtype == torch.int64
    assert set(idx.tolist()) <= set(dm.train_indices.tolist())
    batch = dm.on_after_batch_transfer(idx, 0)
    assert batch["obs"].shape == (32, 3, 12) and batch["next_obs"].shape == (32, 3, 12)
    assert batch["state"].shape == (32, 12) and batch["actions"].shape == (32, 3)
    assert batch["avail_actions"].shape == (32, 3, 5) and batch["avail_actions"].dtype == torch.bool
    assert batch["weights"].tolist() == [1.0] * 32 and not batch["synthetic"].any()
    storage = dm.dataset.arrays
    np.testing.assert_array_equal(batch["obs"].numpy(), storage["observations"][idx.numpy()])


def test_validation_batches_cover_held_out_steps_once(discrete_dataset):
    dm = _setup(discrete_dataset, val_batch_size=50)
    seen = torch.cat(list(dm.val_dataloader()))
    assert torch.equal(seen, dm.val_indices)


class _FixedSynthetic(SyntheticSource):
    """A source of extra transitions standing in for world-model rollouts: real dataset
    transitions relabelled with reward 99 and weight 0.5, so they can be told apart in a batch."""

    def __init__(self, dm: OfflineMARLDataModule):
        self.template = gather_transitions(dm.storage_on(torch.device("cpu")), dm.train_indices[:1])
        self.calls, self.seeds = [], []

    def setup(self, spec, seed):
        self.seeds.append(seed)

    def sample(self, batch_size: int, device: torch.device):
        self.calls.append(batch_size)
        out = {k: v.expand(batch_size, *v.shape[1:]).clone() for k, v in self.template.items()}
        out["rewards"] = torch.full((batch_size,), 99.0)
        out["weights"] = torch.full((batch_size,), 0.5)
        return out


def _spy_fit(dm, max_steps=3, **trainer_kwargs):
    """A real Trainer fit of a small BC policy that records every batch the module receives."""
    model = BCPolicy(dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size, hidden_sizes=[16])
    seen = {"train": [], "val": []}
    train_step, val_step = model.training_step, model.validation_step
    model.training_step = lambda batch, batch_idx: (seen["train"].append(batch), train_step(batch, batch_idx))[1]
    model.validation_step = lambda batch, batch_idx: (seen["val"].append(batch), val_step(batch, batch_idx))[1]
    Trainer(max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, **trainer_kwargs).fit(model, dm)
    return seen


def test_fit_moves_nothing_but_indices_through_the_loader(discrete_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=16, steps_per_epoch=4)
    seen = _spy_fit(dm, max_steps=4)
    assert len(seen["train"]) == 4 and all(b["obs"].shape == (16, 3, 12) for b in seen["train"])
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int64 for b in dm.train_dataloader())


def test_synthetic_source_is_mixed_into_training_batches_only(discrete_dataset):
    source = _FixedSynthetic(_setup(discrete_dataset))
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=40, real_ratio=0.75, steps_per_epoch=3,
                               val_batch_size=64, synthetic=source)
    seen = _spy_fit(dm, max_steps=3, val_check_interval=3)
    assert source.calls == [10, 10, 10] and source.seeds == [sampler_seed(0, 0) + 1]  # set up once, rank 0
    for batch in seen["train"]:
        assert len(batch["rewards"]) == 40 and batch["synthetic"].sum() == 10
        assert (batch["rewards"][batch["synthetic"]] == 99).all()
        assert (batch["weights"][batch["synthetic"]] == 0.5).all()
        assert (batch["weights"][~batch["synthetic"]] == 1).all()
    assert seen["val"] and not any(b["synthetic"].any() for b in seen["val"])


def test_each_rank_samples_with_its_own_seed():
    indices = torch.arange(1000)
    streams = [next(iter(RandomIndexBatches(indices, 64, 1, sampler_seed(0, rank)))) for rank in range(4)]
    assert len({tuple(s.tolist()) for s in streams}) == 4
    assert torch.equal(next(iter(RandomIndexBatches(indices, 64, 1, sampler_seed(0, 2)))), streams[2])


def test_sampler_state_resumes_after_the_last_trained_batch(discrete_dataset, tmp_path):
    """The saved state precedes the first batch not trained on (even if a loader fetched further ahead)."""
    from lightning.pytorch import Trainer

    from logo.dims import linked_dims
    from logo.policy import BCPolicy

    reference = iter(_setup(discrete_dataset, seed=0, batch_size=32, val_fraction=0.0).train_dataloader())
    batches = [next(reference) for _ in range(5)]
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=32, seed=0, val_fraction=0.0)
    model = BCPolicy(**linked_dims(dm.spec), hidden_sizes=[16])
    Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path).fit(model, dm)
    state = dm.state_dict()
    assert set(state) == {"statistics", "per_rank"} and state["per_rank"][0]["trained_batches"] == 3
    resumed = _setup(discrete_dataset, seed=0, batch_size=32, val_fraction=0.0)
    resumed.load_state_dict(state)
    assert torch.equal(next(iter(resumed.train_dataloader())), batches[3])


def test_bad_arguments_and_paths_give_clear_errors(tmp_path, discrete_dataset):
    with pytest.raises(LogoError, match=r"data.real_ratio: expected a value in \[0.0, 1.0\], got 1.5"):
        OfflineMARLDataModule(str(discrete_dataset), real_ratio=1.5)
    with pytest.raises(LogoError, match="data.batch_size"):
        OfflineMARLDataModule(str(discrete_dataset), batch_size=0)
    with pytest.raises(DatasetError, match="no such file"):
        OfflineMARLDataModule(str(tmp_path / "missing.zarr"))


def test_split_keeps_a_training_episode_and_honours_no_validation(tmp_path, discrete_dataset):
    from logo.data.pointmass import generate_synthetic_dataset

    single = generate_synthetic_dataset(tmp_path / "one.zarr", episodes=1)
    dm = _setup(single, val_fraction=0.5)
    assert len(dm.train_episodes) == 1 and len(dm.val_episodes) == 0 and dm.val_dataloader() == []
    dm = _setup(discrete_dataset, val_fraction=0.0)
    assert len(dm.val_episodes) == 0 and len(dm.train_episodes) == 60
    dm = _setup(discrete_dataset, val_fraction=0.001)  # rounds to 0 episodes: still one held out
    assert len(dm.val_episodes) == 1


def test_returns_to_go_by_hand_and_in_batches(discrete_dataset):
    dm = _setup(discrete_dataset, return_gamma=0.5, batch_size=16)
    data = dm.dataset
    rtg = data.returns_to_go(0.5)
    start, end = data.episode_bounds()[:2]
    rewards = data.arrays["rewards"][start:end].astype(np.float64)
    by_hand = [sum(rewards[k] * 0.5 ** (k - t) for k in range(t, end - start)) for t in range(end - start)]
    np.testing.assert_allclose(rtg[start:end], by_hand, rtol=1e-6)
    assert rtg[end - 1] == pytest.approx(rewards[-1])  # nothing after an episode's last step, even a truncated one
    batch = dm.on_after_batch_transfer(dm.val_indices[:8], 0)
    torch.testing.assert_close(batch["returns_to_go"], torch.from_numpy(rtg)[dm.val_indices[:8]])
    source = _FixedSynthetic(dm)
    mixed = OfflineMARLDataModule(str(discrete_dataset), batch_size=40, real_ratio=0.75, steps_per_epoch=3,
                                  return_gamma=0.5, synthetic=source)
    seen = _spy_fit(mixed, max_steps=2)
    for batch in seen["train"]:
        assert batch["returns_to_go"][batch["synthetic"]].isnan().all()
        assert not batch["returns_to_go"][~batch["synthetic"]].isnan().any()
    with pytest.raises(LogoError, match=r"data.return_gamma: expected a value in \[0.0, 1.0\], got 1.5"):
        OfflineMARLDataModule(str(discrete_dataset), return_gamma=1.5)
