"""CFCQL SMAC HDF5 import: exact values, episode ends, padding, corrupt files, file names, training on the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from logo.data import OfflineDataset, gather_transitions  # noqa: E402
from logo.data.importers import ImportFormatError, import_dataset, read_source  # noqa: E402
from logo.data.importers.cfcql import scenario_and_quality  # noqa: E402
from logo.data.validate import validate_dataset  # noqa: E402

N, OBS, STATE, ACTS, LIMIT = 3, 4, 5, 6, 5  # rows per episode: LIMIT + 1
LENGTHS = [3, 5, 4, 2, 1]  # episode 1 reaches the time limit
TERMINATED = [True, False, True, True, True]  # episode 1 is truncated (terminated 0 at L - 1)
PAD = 999.0  # value written after row L: must never reach the dataset


def cfcql_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays in CFCQL's layout (``collect_sequential``): [E, T+1, ...], L + 1 filled rows per episode."""
    rng = np.random.default_rng(seed)
    e, rows = len(LENGTHS), LIMIT + 1
    arrays = {
        "state": np.full((e, rows, STATE), PAD, np.float32),
        "obs": np.full((e, rows, N, OBS), PAD, np.float32),
        "actions": np.full((e, rows, N, 1), 77, np.int64),  # padding: out of range on purpose
        "avail_actions": np.zeros((e, rows, N, ACTS), np.int32),
        "probs": np.zeros((e, rows, N, ACTS), np.float32),
        "reward": np.full((e, rows, 1), PAD, np.float32),
        "terminated": np.zeros((e, rows, 1), np.uint8),
        "filled": np.zeros((e, rows, 1), np.int64),
    }
    for i, (length, term) in enumerate(zip(LENGTHS, TERMINATED)):
        filled = slice(0, length + 1)
        arrays["state"][i, filled] = rng.normal(size=(length + 1, STATE))
        arrays["obs"][i, filled] = rng.normal(size=(length + 1, N, OBS))
        avail = rng.random((length + 1, N, ACTS)) < 0.5
        actions = rng.integers(0, ACTS, size=(length + 1, N))
        avail[np.arange(length + 1)[:, None], np.arange(N)[None], actions] = True  # the taken action is legal
        arrays["avail_actions"][i, filled] = avail
        arrays["actions"][i, filled, :, 0] = actions  # actions[L]: the dummy action on the final observation
        arrays["probs"][i, filled] = rng.random((length + 1, N, ACTS))
        arrays["reward"][i, :length, 0] = rng.normal(size=length)
        arrays["reward"][i, length, 0] = 0.0
        arrays["terminated"][i, length - 1, 0] = term
        arrays["filled"][i, filled, 0] = 1
    return arrays


def write_h5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Flat root datasets, chunked and resizable along episodes, as CFCQL writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, maxshape=(None, *value.shape[1:]), chunks=True)
    return path


@pytest.fixture
def source(tmp_path) -> Path:
    return write_h5(tmp_path / "src" / "2s3z_medium_replay.h5", cfcql_arrays())


def _steps(array: np.ndarray) -> np.ndarray:
    """Rows 0..L-1 of every episode of a [E, T+1, ...] array, concatenated."""
    return np.concatenate([array[e, :n] for e, n in enumerate(LENGTHS)])


def _import(src: Path, tmp_path: Path, **options):
    out = tmp_path / "out" / "data.zarr"
    path, report = import_dataset("cfcql", src, out, progress=False, **options)
    return path, report


def test_values_round_trip_exactly(source, tmp_path):
    raw = cfcql_arrays()
    out, report = _import(source, tmp_path)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    assert data.n_episodes == len(LENGTHS)
    assert np.diff(data.episode_bounds()).tolist() == LENGTHS
    starts = data.arrays["episode_starts"]

    # whole arrays: steps 0..L-1 of every episode, in order; rows L.. never appear as steps
    arr = data.arrays
    np.testing.assert_array_equal(arr["observations"], _steps(raw["obs"]))
    np.testing.assert_array_equal(arr["state"], _steps(raw["state"]))
    np.testing.assert_array_equal(arr["actions"], _steps(raw["actions"][..., 0]))
    np.testing.assert_array_equal(arr["rewards"], _steps(raw["reward"][..., 0]))
    np.testing.assert_array_equal(arr["avail_actions"], _steps(raw["avail_actions"] != 0))
    np.testing.assert_array_equal(arr["final_observations"],
                                  np.stack([raw["obs"][e, n] for e, n in enumerate(LENGTHS)]))
    np.testing.assert_array_equal(arr["final_state"], np.stack([raw["state"][e, n] for e, n in enumerate(LENGTHS)]))
    np.testing.assert_array_equal(arr["final_avail_actions"],
                                  np.stack([raw["avail_actions"][e, n] != 0 for e, n in enumerate(LENGTHS)]))
    for name in ("observations", "state", "rewards", "final_observations", "final_state"):
        assert not np.any(arr[name] == PAD), name
    assert not np.any(arr["actions"] == 77)
    np.testing.assert_allclose(data.episode_returns(),
                               [raw["reward"][e, :n, 0].sum() for e, n in enumerate(LENGTHS)], rtol=1e-6)

    storage = data.storage()
    # episode 1, step 2 (inside the episode): next values are row 3
    t = torch.tensor([int(starts[1]) + 2])
    b = gather_transitions(storage, t)
    np.testing.assert_array_equal(b["obs"][0].numpy(), raw["obs"][1, 2])
    np.testing.assert_array_equal(b["state"][0].numpy(), raw["state"][1, 2])
    np.testing.assert_array_equal(b["actions"][0].numpy(), raw["actions"][1, 2, :, 0])
    assert b["rewards"].item() == raw["reward"][1, 2, 0]
    np.testing.assert_array_equal(b["next_obs"][0].numpy(), raw["obs"][1, 3])
    np.testing.assert_array_equal(b["next_state"][0].numpy(), raw["state"][1, 3])
    np.testing.assert_array_equal(b["avail_actions"][0].numpy(), raw["avail_actions"][1, 2] != 0)
    np.testing.assert_array_equal(b["next_avail_actions"][0].numpy(), raw["avail_actions"][1, 3] != 0)
    assert b["terminals"].item() == 0 and b["truncations"].item() == 0

    # last step of every episode: next values are row L; terminated vs truncated as stored at L - 1
    last = torch.as_tensor(starts + np.array(LENGTHS) - 1)
    b = gather_transitions(storage, last)
    for e, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(b["next_obs"][e].numpy(), raw["obs"][e, n])
        np.testing.assert_array_equal(b["next_state"][e].numpy(), raw["state"][e, n])
        np.testing.assert_array_equal(b["actions"][e].numpy(), raw["actions"][e, n - 1, :, 0])
    assert b["terminals"].tolist() == [float(x) for x in TERMINATED]
    assert b["truncations"].tolist() == [float(not x) for x in TERMINATED]
    assert arr["terminals"].sum() == sum(TERMINATED) and arr["truncations"].sum() == 1

    spec = data.spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("smac", "2s3z", "medium-replay")
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions) == (N, OBS, STATE, ACTS)
    assert spec.extra["episode_limit"] == LIMIT
    mapping = "\n".join(report.mapping)
    assert data.attrs["import"]["mapping"] == report.mapping
    assert "probs dropped" in mapping and "dummy action" in mapping and "padding" in mapping
    assert "4 terminated, 1 truncated (1 of them at L = 5, 0 earlier)" in mapping


def test_actions_onehot_is_used_only_without_actions(tmp_path):
    raw = cfcql_arrays()
    onehot = np.eye(ACTS, dtype=np.float32)[np.clip(raw["actions"][..., 0], 0, ACTS - 1)]  # [E, T+1, N, A]
    both = write_h5(tmp_path / "both" / "3m_expert.h5", {**raw, "actions_onehot": onehot})
    assert any("actions_onehot dropped" in line for line in read_source("cfcql", both).mapping)
    only = {k: v for k, v in raw.items() if k != "actions"}
    src = write_h5(tmp_path / "src" / "3m_expert.h5", {**only, "actions_onehot": onehot})
    out, _ = _import(src, tmp_path)
    data = OfflineDataset.load(out)
    np.testing.assert_array_equal(data.arrays["actions"], _steps(raw["actions"][..., 0]))


@pytest.mark.parametrize(("name", "scenario", "quality"), [
    ("2s3z_medium_replay.h5", "2s3z", "medium-replay"),
    ("3s_vs_5z_expert.h5", "3s_vs_5z", "expert"),
    ("5m_vs_6m_medium.h5", "5m_vs_6m", "medium"),
    ("6h_vs_8z_mixed.h5", "6h_vs_8z", "mixed"),
    ("my_map.h5", "my_map", "unknown"),
])
def test_scenario_and_quality_from_file_name(name, scenario, quality):
    assert scenario_and_quality(name) == (scenario, quality)


def test_options_override_names(source):
    spec = read_source("cfcql", source, env="smacv1", scenario="2s3z_v2", quality="good").spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("smacv1", "2s3z_v2", "good")


def _missing(a):
    del a["filled"]


def _shape(a):
    a["obs"] = a["obs"][:-1]


def _nan(a):
    a["obs"][2, 1, 0, 0] = np.nan


def _hole(a):
    a["filled"][1, 2, 0] = 0


def _too_short(a):
    a["filled"][4, 1, 0] = 0  # one filled row: no step


def _illegal(a):
    act = a["actions"][1, 2, 1, 0]
    a["avail_actions"][1, 2, 1, act] = 0


def _out_of_range(a):
    a["actions"][0, 1, 2, 0] = ACTS


def _early_end(a):
    a["terminated"][2, 0, 0] = 1


def _reward_dims(a):
    a["reward"] = a["reward"][..., 0]


@pytest.mark.parametrize(("corrupt", "match"), [
    (_missing, r"missing 'filled'"),
    (_shape, r"obs has shape \[4, 6, 3, 4\], expected \[5, 6, \*, \*\]"),
    (_nan, r"obs holds 1 NaN or infinite values in episode 2, first at step 1"),
    (_hole, r"filled of episode 1 is \[1, 1, 0, 1, 1, 1\], expected ones followed by zeros"),
    (_too_short, r"filled of episode 4 marks 1 row"),
    (_illegal, r"actions holds \d at episode 1 step 2 agent 1, which avail_actions marks illegal"),
    (_out_of_range, r"actions holds 6 at episode 0 step 1 agent 2, outside \[0, 6\)"),
    (_early_end, r"terminated is set at episode 2 step 0"),
    (_reward_dims, r"reward has shape \[5, 6\], expected \[5, 6, 1\]"),
])
def test_corrupt_files_fail_clearly_and_leave_nothing(tmp_path, corrupt, match):
    arrays = cfcql_arrays()
    corrupt(arrays)
    src = write_h5(tmp_path / "src" / "3m_medium.h5", arrays)
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=match) as info:
        import_dataset("cfcql", src, out, progress=False)
    assert str(src) in str(info.value)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    src = tmp_path / "3m_medium.h5"
    src.write_text("not hdf5\n")
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=r"3m_medium\.h5: not a readable HDF5 file"):
        import_dataset("cfcql", src, out, progress=False)
    assert not out.parent.exists()


def test_cli_import_validate_and_fit(source, cli_round_trip):
    cli_round_trip("cfcql", source)
