"""The online data module and its replay buffer: ring overwrite, episode bookkeeping, seeding, dims."""

from __future__ import annotations

import numpy as np
import pytest

from logo.data.schema import DatasetSpec
from logo.data.validate import validate_dataset
from logo.envs.episodes import episode_seed
from logo.errors import LogoError
from logo.online.datamodule import OnlineEnvDataModule
from logo.online.replay import ReplayBuffer

SPEC = DatasetSpec(env_family="test", scenario="toy", n_agents=2, obs_dim=3, state_dim=4, action_kind="continuous",
                   action_dim=1, action_low=[-1.0], action_high=[1.0])


def _play(buffer: ReplayBuffer, lengths: list[int], terminated: list[bool]) -> None:
    """Episodes whose every array holds the global step index, so positions are easy to check."""
    step = 0
    for e, (length, term) in enumerate(zip(lengths, terminated)):
        for t in range(length):
            last = t == length - 1
            buffer.add(np.full((2, 3), step), np.full(4, step), np.full((2, 1), 0.5), float(step),
                       np.full((2, 3), step + 1), np.full(4, step + 1), terminated=last and term,
                       truncated=last and not term, seed=100 + e)
            step += 1


def test_buffer_keeps_only_whole_episodes_once_it_wraps(tmp_path):
    buffer = ReplayBuffer(10, SPEC)
    _play(buffer, [4, 3, 5, 2], [True, False, True, False])  # 14 steps: the first 4 are overwritten
    assert len(buffer) == 10 and buffer.added == 14
    assert [(e.start, e.length, e.terminated, e.seed) for e in buffer.complete_episodes()] == [
        (4, 3, False, 101), (7, 5, True, 102), (12, 2, False, 103)]
    arrays = buffer.episode_arrays(buffer.complete_episodes()[2])  # stored across the wrap
    np.testing.assert_array_equal(arrays["rewards"], [12, 13])
    np.testing.assert_array_equal(arrays["final_state"], np.full(4, 14))
    out = buffer.write_dataset(tmp_path / "r.zarr", SPEC)
    assert validate_dataset(out) == []


def test_buffer_with_no_finished_episode_writes_nothing(tmp_path):
    buffer = ReplayBuffer(10, SPEC)
    buffer.add(np.zeros((2, 3)), np.zeros(4), np.zeros((2, 1)), 0.0, np.zeros((2, 3)), np.zeros(4), False, False, 0)
    with pytest.raises(LogoError, match="no complete episode"):
        buffer.write_dataset(tmp_path / "r.zarr", SPEC)
    assert not (tmp_path / "r.zarr").exists()


def test_buffer_samples_terminations_only_as_terminal():
    buffer = ReplayBuffer(100, SPEC)
    _play(buffer, [5, 5], [True, False])
    batch = buffer.sample(500, np.random.default_rng(0))
    assert batch["state"].shape == (500, 4) and batch["actions"].shape == (500, 2, 1)
    np.testing.assert_array_equal(batch["terminals"], batch["rewards"] == 4)  # truncated step 9 is not terminal


def test_data_module_links_dims_and_seeds_episodes_reproducibly(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    runs = []
    for run in range(2):
        dm = OnlineEnvDataModule("mamujoco", "Hopper-3x1", env_options={"max_episode_steps": 10}, total_steps=25,
                                 seed=7, journal=str(tmp_path / f"played{run}"))
        assert (dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size) == (
            3, 9, 11, "continuous", 1)
        dm.setup("fit")
        assert len(dm.train_dataloader()) == 25
        for _ in range(25):
            dm.step(np.zeros((1, 3, 1), np.float32))
        runs.append(dm.buffer)
    assert [e.seed for e in runs[0].episodes] == [episode_seed(7, k) for k in range(len(runs[0].episodes))]
    np.testing.assert_array_equal(runs[0].state[:25], runs[1].state[:25])
    assert len(set(e.seed for e in runs[0].episodes)) == len(runs[0].episodes) >= 2


@pytest.mark.parametrize("kwargs", [{"total_steps": 0}, {"buffer_size": 0}, {"seed": -1}])
def test_data_module_rejects_bad_sizes(kwargs):
    with pytest.raises(LogoError):
        OnlineEnvDataModule("mamujoco", "Hopper-3x1", **kwargs)


def test_the_journal_holds_every_finished_episode_and_a_restored_module_refills_its_buffer(tmp_path):
    """One file per finished episode, equal to the buffer's episode; ``load_state_dict`` (a resume) refills a new
    module's buffer with the journal's latest ``buffer_size`` transitions and continues from the next seed."""
    pytest.importorskip("gymnasium_robotics")
    options = {"env_options": {"max_episode_steps": 10}, "total_steps": 100, "seed": 7,
               "journal": str(tmp_path / "played")}
    dm = OnlineEnvDataModule("mamujoco", "Hopper-3x1", buffer_size=100, **options)
    dm.setup("fit")
    rng = np.random.default_rng(0)
    for _ in range(33):  # several episodes, the last one unfinished
        dm.step(rng.uniform(-1, 1, (1, 3, 1)).astype(np.float32))
    files = sorted((tmp_path / "played").glob("*.npz"))
    assert len(files) == dm.finished == dm.journal_files == len(dm.buffer.episodes) < dm.episodes
    for path, record in zip(files, dm.buffer.episodes):
        with np.load(path) as journal:
            kept = dm.buffer.episode_arrays(record)
            assert list(journal["seeds"]) == [record.seed] and list(journal["lengths"]) == [record.length]
            np.testing.assert_array_equal(journal["actions"], kept["actions"])
            np.testing.assert_array_equal(journal["obs"], kept["observations"])
            np.testing.assert_array_equal(journal["final_state"][0], kept["final_state"])
            assert bool(journal["terminated"][0]) == record.terminated
    state = dm.state_dict()
    resumed = OnlineEnvDataModule("mamujoco", "Hopper-3x1", buffer_size=12, **options)  # a smaller buffer
    resumed.setup("fit")
    (tmp_path / "played" / "0000999.npz").write_bytes(b"played after the checkpoint")  # pruned on the next write
    resumed.load_state_dict(state)
    assert (resumed.env_steps, resumed.episodes, resumed.finished) == (33, dm.episodes, dm.finished)
    refilled = resumed.buffer.complete_episodes()
    assert refilled and [r.seed for r in refilled] == [r.seed for r in dm.buffer.episodes[-len(refilled):]]
    assert len(resumed.buffer) == 12
    np.testing.assert_array_equal(resumed.buffer.sample(4, np.random.default_rng(1))["state"].shape, (4, 11))
    while resumed.finished == dm.finished:  # the unfinished episode was dropped: the next one has the next seed
        resumed.step(np.zeros((1, 3, 1), np.float32))
    with np.load(tmp_path / "played" / f"{dm.finished:07d}.npz") as journal:
        assert list(journal["seeds"]) == [episode_seed(7, dm.episodes)]
    assert not (tmp_path / "played" / "0000999.npz").exists()
