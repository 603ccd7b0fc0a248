"""OMAR importer: small npy folders in OMAR's exact layout, written with np.save into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from logo.data.importers import ImportFormatError, import_dataset
from logo.data.reader import OfflineDataset, gather_transitions
from logo.data.validate import validate_dataset


def _save(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def _trajectories(rng: np.random.Generator, lengths: list[int], width: int) -> tuple[np.ndarray, np.ndarray]:
    """obs and next_obs [M, width] of consecutive episodes, next_obs[t] == obs[t+1] inside each."""
    obs, nxt = [], []
    for length in lengths:
        x = rng.normal(size=(length + 1, width))
        obs.append(x[:-1])
        nxt.append(x[1:])
    return np.concatenate(obs), np.concatenate(nxt)


def spread_source(root: Path, n_agents: int = 3, episodes: int = 4) -> Path:
    """simple_spread/medium/seed_0_data: 3 agents, 4 episodes of 25 steps, all-zero dones."""
    rng = np.random.default_rng(0)
    arrays = {}
    m = 25 * episodes
    for i in range(n_agents):
        arrays[f"obs_{i}"], arrays[f"next_obs_{i}"] = _trajectories(rng, [25] * episodes, 18)
        arrays[f"acs_{i}"] = rng.uniform(-1, 1, size=(m, 2))
        arrays[f"rews_{i}"] = rng.normal(size=m)
        arrays[f"dones_{i}"] = np.zeros(m)
    arrays["acs_0"][3, 0] = 1.5  # outside OMAR's [-1, 1]: clipped
    arrays["acs_1"][7, 1] = -2.0
    return _save(root / "simple_spread" / "medium" / "seed_0_data", arrays)


def cheetah_source(root: Path) -> Path:
    """HalfCheetah-v2/expert/seed_1_data: 2 agents; episodes of 10 (limit), 6 (terminated), 10 steps, 3 trailing."""
    rng = np.random.default_rng(1)
    lengths = [10, 6, 10, 3]
    m = sum(lengths)
    states, next_states = _trajectories(rng, lengths, 17)
    dones = np.zeros(m, bool)
    dones[np.cumsum(lengths[:-1]) - 1] = True
    reward = rng.normal(size=m)
    arrays = {}
    for i in range(2):
        arrays[f"obs_{i}"], arrays[f"next_obs_{i}"] = _trajectories(rng, lengths, 6)
        arrays[f"acs_{i}"] = rng.uniform(-1, 1, size=(m, 3))
        arrays[f"rews_{i}"] = reward
        arrays[f"dones_{i}"] = dones
        arrays[f"states_{i}"], arrays[f"next_states_{i}"] = states, next_states
    return _save(root / "HalfCheetah-v2" / "expert" / "seed_1_data", arrays)


def tag_source(root: Path) -> Path:
    """simple_tag/random/seed_2_data: 3 predators (6 features + 2 trailing -inf), prey 3 with 5 features."""
    rng = np.random.default_rng(2)
    m = 50
    arrays = {}
    for i in range(4):
        width = 6 if i < 3 else 5
        obs, nxt = _trajectories(rng, [25, 25], width)
        if i < 3:
            pad = np.full((m, 2), -np.inf)
            obs, nxt = np.concatenate([obs, pad], 1), np.concatenate([nxt, pad], 1)
        arrays[f"obs_{i}"], arrays[f"next_obs_{i}"] = obs, nxt
        arrays[f"acs_{i}"] = rng.uniform(-1, 1, size=(m, 2))
        arrays[f"rews_{i}"] = rng.normal(size=m)
        arrays[f"dones_{i}"] = np.zeros(m)
    return _save(root / "simple_tag" / "random" / "seed_2_data", arrays)


def _load(src: Path, name: str) -> np.ndarray:
    return np.load(src / f"{name}.npy")


def test_spread_round_trip(tmp_path):
    src = spread_source(tmp_path / "omar")
    out, source = import_dataset("omar", src, tmp_path / "spread.zarr", progress=False)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    spec = data.spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("mpe", "simple_spread_v3", "medium")
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.action_dim) == (3, 18, 54, 2)
    assert spec.action_low == [-1.0, -1.0] and spec.action_high == [1.0, 1.0]
    assert data.n_episodes == 4 and np.diff(data.episode_bounds()).tolist() == [25] * 4
    ends = data.episode_bounds()[1:] - 1
    assert data.arrays["truncations"][ends].all() and data.arrays["truncations"].sum() == 4
    assert not data.arrays["terminals"].any()
    assert data.arrays["obs_mask"].all()

    obs = np.stack([_load(src, f"obs_{i}") for i in range(3)], 1)
    nxt = np.stack([_load(src, f"next_obs_{i}") for i in range(3)], 1)
    acs = np.clip(np.stack([_load(src, f"acs_{i}") for i in range(3)], 1), -1, 1)
    rews = np.stack([_load(src, f"rews_{i}") for i in range(3)], 1)
    idx = np.array([0, 3, 7, 24, 30, 99])
    batch = gather_transitions(data.storage(), torch.from_numpy(idx))
    np.testing.assert_array_equal(batch["obs"].numpy(), obs[idx].astype(np.float32))
    np.testing.assert_array_equal(batch["actions"].numpy(), acs[idx].astype(np.float32))
    np.testing.assert_allclose(batch["rewards"].numpy(), rews[idx].mean(1), rtol=1e-6)
    np.testing.assert_array_equal(data.arrays["agent_rewards"][idx], rews[idx].astype(np.float32))
    np.testing.assert_array_equal(batch["next_obs"].numpy(), nxt[idx].astype(np.float32))  # t=24, 99: final obs
    np.testing.assert_array_equal(data.arrays["final_observations"], nxt[ends].astype(np.float32))
    np.testing.assert_array_equal(batch["state"].numpy(), obs[idx].reshape(len(idx), -1).astype(np.float32))
    np.testing.assert_array_equal(batch["next_state"].numpy(), nxt[idx].reshape(len(idx), -1).astype(np.float32))
    assert batch["actions"][1, 0, 0] == 1.0 and batch["actions"][2, 1, 1] == -1.0
    text = "\n".join(source.mapping)
    assert "2 values outside clipped" in text and "mean" in text and "4 consecutive 25-step episodes" in text
    assert data.attrs["import"]["mapping"] == source.mapping


def test_halfcheetah_episodes_and_states(tmp_path):
    src = cheetah_source(tmp_path / "omar")
    out, source = import_dataset("omar", src, tmp_path / "cheetah.zarr", progress=False, episode_length=10)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    assert (data.spec.env_family, data.spec.scenario, data.spec.quality) == ("mamujoco", "HalfCheetah-2x3", "expert")
    assert (data.spec.n_agents, data.spec.obs_dim, data.spec.state_dim, data.spec.action_dim) == (2, 6, 17, 3)
    assert np.diff(data.episode_bounds()).tolist() == [10, 6, 10]  # the 3 trailing steps dropped
    ends = data.episode_bounds()[1:] - 1
    assert data.arrays["truncations"][ends].tolist() == [True, False, True]
    assert data.arrays["terminals"][ends].tolist() == [False, True, False]
    states, next_states = _load(src, "states_0"), _load(src, "next_states_0")
    np.testing.assert_array_equal(data.arrays["state"], states[:26].astype(np.float32))
    np.testing.assert_array_equal(data.arrays["final_state"], next_states[ends].astype(np.float32))
    idx = torch.tensor([9, 15, 20])
    batch = gather_transitions(data.storage(), idx)
    np.testing.assert_array_equal(batch["next_obs"][:, 1].numpy(), _load(src, "next_obs_1")[idx].astype(np.float32))
    np.testing.assert_array_equal(batch["rewards"].numpy(), _load(src, "rews_0")[idx].astype(np.float32))
    text = "\n".join(source.mapping)
    assert "last 3 steps" in text and "2 truncated, 1 terminated" in text and "are equal" in text

    # default episode_length 1000: no episode reaches it, all terminated
    out2, _ = import_dataset("omar", src, tmp_path / "cheetah1000.zarr", progress=False)
    assert not OfflineDataset.load(out2).arrays["truncations"].any()


@pytest.mark.parametrize("agents", [[0, 1, 2], None])
def test_tag_padding_and_mask(tmp_path, agents):
    src = tag_source(tmp_path / "omar")
    out, source = import_dataset("omar", src, tmp_path / "tag.zarr", progress=False, agents=agents)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    n = 3 if agents else 4
    assert (data.spec.scenario, data.spec.n_agents, data.spec.obs_dim) == ("simple_tag_v3", n, 6)
    assert data.spec.state_dim == 3 * 6 + 5  # every agent's real observation, prey included, as logo's adapter
    mask = data.arrays["obs_mask"]
    assert mask[:3].all()
    if n == 4:
        assert mask[3].tolist() == [True] * 5 + [False]
        assert (data.arrays["observations"][:, 3, 5] == 0).all()
        np.testing.assert_array_equal(data.arrays["observations"][:, 3, :5], _load(src, "obs_3").astype(np.float32))
    np.testing.assert_array_equal(data.arrays["observations"][:, 0], _load(src, "obs_0")[:, :6].astype(np.float32))
    np.testing.assert_array_equal(data.arrays["rewards"], _load(src, "rews_0").astype(np.float32))  # agent0
    np.testing.assert_array_equal(data.arrays["state"][:, 18:], _load(src, "obs_3").astype(np.float32))
    assert "obs_0.npy 8 -> 6 features" in "\n".join(source.mapping)


def _corrupt_missing(src: Path) -> None:
    (src / "rews_1.npy").unlink()


def _corrupt_rows(src: Path) -> None:
    np.save(src / "acs_2.npy", _load(src, "acs_2")[:-1])


def _corrupt_nan(src: Path) -> None:
    obs = _load(src, "obs_1")
    obs[40, 3] = np.nan
    np.save(src / "obs_1.npy", obs)


def _corrupt_next(src: Path) -> None:
    nxt = _load(src, "next_obs_0")
    nxt[10, 2] += 0.1
    np.save(src / "next_obs_0.npy", nxt)


def _corrupt_rank(src: Path) -> None:
    np.save(src / "rews_0.npy", _load(src, "rews_0")[:, None])


def _corrupt_length(src: Path) -> None:
    for name in ("obs", "acs", "rews", "next_obs", "dones"):
        for i in range(3):
            np.save(src / f"{name}_{i}.npy", _load(src, f"{name}_{i}")[:90])


@pytest.mark.parametrize("corrupt, expected", [
    (_corrupt_missing, ["rews_1.npy", "missing"]),
    (_corrupt_rows, ["acs_2.npy", "99 rows", "100"]),
    (_corrupt_nan, ["obs_1.npy", "step 40", "feature 3"]),
    (_corrupt_next, ["next_obs_0.npy", "row 10", "obs_0.npy row 11"]),
    (_corrupt_rank, ["rews_0.npy", "[100, 1]", "[M]"]),
    (_corrupt_length, ["90 steps", "multiple of episode_length 25"]),
])
def test_corrupt_sources(tmp_path, corrupt, expected):
    src = spread_source(tmp_path / "omar")
    corrupt(src)
    out = tmp_path / "out" / "bad.zarr"
    with pytest.raises(ImportFormatError) as info:
        import_dataset("omar", src, out, progress=False)
    for part in expected:
        assert part in str(info.value)
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_partial_nonfinite_column_is_not_padding(tmp_path):
    src = tag_source(tmp_path / "omar")
    obs = _load(src, "obs_1")
    obs[17, 7] = 0.5  # the -inf block is no longer non-finite on every step
    np.save(src / "obs_1.npy", obs)
    with pytest.raises(ImportFormatError, match=r"obs_1\.npy.*step 0, feature 6"):
        import_dataset("omar", src, tmp_path / "tag.zarr", progress=False)


def test_not_a_folder_and_unknown_env(tmp_path):
    (tmp_path / "file.npy").write_bytes(b"")
    with pytest.raises(ImportFormatError, match="not a folder"):
        import_dataset("omar", tmp_path / "file.npy", tmp_path / "x.zarr", progress=False)
    src = spread_source(tmp_path / "omar")
    moved = tmp_path / "other" / "medium" / "seed_0_data"
    moved.parent.mkdir(parents=True)
    src.rename(moved)
    with pytest.raises(ImportFormatError, match="'other'"):
        import_dataset("omar", moved, tmp_path / "x.zarr", progress=False)
    out, _ = import_dataset("omar", moved, tmp_path / "x.zarr", progress=False, env="mpe",
                            scenario="simple_spread_v3", quality="expert")
    assert OfflineDataset.load(out).spec.quality == "expert"


def test_cli_import_validate_and_fit(tmp_path, cli_round_trip):
    printed = cli_round_trip("omar", spread_source(tmp_path))
    assert "validated (mpe/simple_spread_v3, medium)" in printed
