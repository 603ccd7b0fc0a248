"""OMIGA MaMuJoCo HDF5 import: delimiter rows, exact values, truncation by length, clipping, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from logo.data import OfflineDataset, gather_transitions  # noqa: E402
from logo.data.importers import ImportFormatError, import_dataset, read_source  # noqa: E402
from logo.data.importers.omiga import scenario_and_quality  # noqa: E402
from logo.data.validate import validate_dataset  # noqa: E402

N, OBS, STATE, ACT, LIMIT = 3, 7, 7, 2, 6
LENGTHS = [4, 6, 3, 6]  # episodes 1 and 3 reach the time limit
TAIL = 2  # rows after the last delimiter: an episode the file cut off
OUTSIDE = {(0, 1, 0, 0): 1.5, (2, 2, 1, 1): -2.0}  # (episode, step, agent, dim): action values outside [-1, 1]


def omiga_layout(seed: int = 0) -> tuple[dict[str, np.ndarray], list[int]]:
    """Rows as OMIGA's loader expects them: each episode's steps (d = 0), then a delimiter row (d = 1) holding
    the final observation and state; returns the arrays and each episode's first row."""
    rng = np.random.default_rng(seed)
    m = sum(LENGTHS) + len(LENGTHS) + TAIL
    ids = np.eye(N, dtype=np.float32)  # OMIGA appends a one-hot agent id to each agent's vector
    env = rng.normal(size=(m, OBS - N)).astype(np.float32)
    per_agent = np.concatenate([np.repeat(env[:, None], N, 1), np.broadcast_to(ids, (m, N, N))], -1)
    arrays = {
        "s": per_agent.copy(),
        "o": per_agent + rng.normal(size=(m, N, OBS)).astype(np.float32),
        "a": rng.uniform(-1, 1, size=(m, N, ACT)).astype(np.float32),
        "r": rng.normal(size=m).astype(np.float32),
        "d": np.zeros((m, 1), np.float32),
    }
    starts, row = [], 0
    for e, length in enumerate(LENGTHS):
        starts.append(row)
        delimiter = row + length
        arrays["d"][delimiter] = 1.0
        arrays["a"][delimiter] = 50.0 if e % 2 else np.nan  # meaningless on delimiter rows
        arrays["r"][delimiter] = np.nan if e % 2 else 999.0
        row = delimiter + 1
    for (e, t, i, k), value in OUTSIDE.items():
        arrays["a"][starts[e] + t, i, k] = value
    arrays["r"][row:] = 555.0  # the trailing run
    return arrays, starts


def write_h5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


@pytest.fixture
def source(tmp_path) -> Path:
    return write_h5(tmp_path / "src" / "Hopper-v2-3x1-medium-replay.hdf5", omiga_layout()[0])


def _import(src: Path, tmp_path: Path, **options):
    return import_dataset("omiga", src, tmp_path / "out" / "data.zarr", progress=False,
                          **{"episode_limit": LIMIT, **options})


def test_values_round_trip_exactly(source, tmp_path):
    raw, first = omiga_layout()
    out, report = _import(source, tmp_path)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    assert data.n_episodes == len(LENGTHS)
    assert np.diff(data.episode_bounds()).tolist() == LENGTHS
    starts = data.arrays["episode_starts"]
    clipped = np.clip(raw["a"], -1, 1)
    steps = np.concatenate([np.arange(f, f + n) for f, n in zip(first, LENGTHS)])  # source rows of all steps
    delimiters = np.array(first) + np.array(LENGTHS)

    arr = data.arrays
    np.testing.assert_array_equal(arr["observations"], raw["o"][steps])
    np.testing.assert_array_equal(arr["state"], raw["s"][steps, 0])
    np.testing.assert_array_equal(arr["actions"], clipped[steps])
    np.testing.assert_array_equal(arr["rewards"], raw["r"][steps])
    np.testing.assert_array_equal(arr["final_observations"], raw["o"][delimiters])
    np.testing.assert_array_equal(arr["final_state"], raw["s"][delimiters, 0])
    assert not np.any(np.isin(arr["rewards"], [999.0, 555.0]))
    assert len(arr["rewards"]) == sum(LENGTHS)  # delimiter rows and the trailing run are not steps
    np.testing.assert_allclose(data.episode_returns(), [raw["r"][f:f + n].sum() for f, n in zip(first, LENGTHS)],
                               rtol=1e-6)

    storage = data.storage()
    # episode 1, step 2: next values come from the following row
    b = gather_transitions(storage, torch.tensor([int(starts[1]) + 2]))
    row = first[1] + 2
    np.testing.assert_array_equal(b["obs"][0].numpy(), raw["o"][row])
    np.testing.assert_array_equal(b["state"][0].numpy(), raw["s"][row, 0])
    np.testing.assert_array_equal(b["actions"][0].numpy(), raw["a"][row])
    assert b["rewards"].item() == raw["r"][row]
    np.testing.assert_array_equal(b["next_obs"][0].numpy(), raw["o"][row + 1])
    np.testing.assert_array_equal(b["next_state"][0].numpy(), raw["s"][row + 1, 0])
    assert b["terminals"].item() == 0 and b["truncations"].item() == 0

    # last steps: the next observation is the delimiter row; LIMIT steps -> truncated, shorter -> terminated
    b = gather_transitions(storage, torch.as_tensor(starts + np.array(LENGTHS) - 1))
    for e, d in enumerate(delimiters):
        np.testing.assert_array_equal(b["next_obs"][e].numpy(), raw["o"][d])
        np.testing.assert_array_equal(b["next_state"][e].numpy(), raw["s"][d, 0])
    assert b["terminals"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert b["truncations"].tolist() == [0.0, 1.0, 0.0, 1.0]

    # clipped actions
    for (e, t, i, k), value in OUTSIDE.items():
        assert arr["actions"][starts[e] + t, i, k] == np.sign(value)

    spec = data.spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("mamujoco", "Hopper-3x1", "medium-replay")
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.action_dim) == (N, OBS, STATE, ACT)
    assert spec.action_low == [-1.0] * ACT and spec.action_high == [1.0] * ACT
    mapping = "\n".join(report.mapping)
    assert f"2 of {sum(LENGTHS) * N * ACT} action values lay outside [-1, 1] and were clipped" in mapping
    assert "differ in 3 of 7 features (indices 4, 5, 6" in mapping
    assert f"the last {TAIL} rows after the final d = 1 row form no complete episode: dropped" in mapping
    assert "-> truncated (2), a shorter one -> terminated (2)" in mapping
    assert "agent id" in mapping and "HalfCheetah never terminates early" in mapping
    assert data.attrs["import"]["options"] == {"episode_limit": LIMIT}


def test_shapes_of_r_and_d_may_carry_a_trailing_axis_and_equal_states_are_reported(tmp_path):
    raw, _ = omiga_layout()
    raw["r"], raw["d"] = raw["r"][:, None], raw["d"][:, 0]
    raw["s"] = np.repeat(raw["s"][:, :1], N, 1)  # every agent sees the same state
    src = write_h5(tmp_path / "src" / "HalfCheetah-v2-6x1-expert.hdf5", raw)
    report = read_source("omiga", src, episode_limit=LIMIT)
    assert report.n_episodes == len(LENGTHS)
    mapping = "\n".join(report.mapping)
    assert "every agent's s row is equal to agent 0's" in mapping
    assert "warning: 2 HalfCheetah episodes are shorter than episode_limit" in mapping
    assert report.spec.scenario == "HalfCheetah-6x1"


@pytest.mark.parametrize(("name", "scenario", "quality"), [
    ("HalfCheetah-v2-6x1-expert.hdf5", "HalfCheetah-6x1", "expert"),
    ("Hopper-v2-3x1-medium-replay.hdf5", "Hopper-3x1", "medium-replay"),
    ("Ant-v2-2x4-medium-expert.hdf5", "Ant-2x4", "medium-expert"),
    ("Ant-v2-2x4-medium.hdf5", "Ant-2x4", "medium"),
    ("Walker2d-v2-2x3-medium_replay.hdf5", "Walker2d-2x3", "medium-replay"),
    ("mydata.hdf5", "mydata", "unknown"),
])
def test_scenario_and_quality_from_file_name(name, scenario, quality):
    assert scenario_and_quality(name) == (scenario, quality)


def test_options_override_names(source):
    spec = read_source("omiga", source, env="mamujoco_v1", scenario="Hopper-3x1-omiga", quality="replay",
                       episode_limit=LIMIT).spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("mamujoco_v1", "Hopper-3x1-omiga", "replay")


def _missing(a):
    del a["d"]


def _rows(a):
    a["a"] = a["a"][:-1]


def _agents(a):
    a["s"] = a["s"][:, :2]


def _nan_obs(a):
    a["o"][3, 1, 2] = np.nan  # a step of episode 0


def _nan_action(a):
    a["a"][6, 0, 0] = np.nan  # a step of episode 1


def _no_episode(a):
    a["d"][:] = 0


def _double_delimiter(a):
    a["d"][5] = 1  # right after episode 0's delimiter (row 4)


def _odd_done(a):
    a["d"][2] = 2


@pytest.mark.parametrize(("corrupt", "options", "match"), [
    (_missing, {}, r"missing 'd'"),
    (_rows, {}, r"a has shape \[\d+, 3, 2\], expected \[\d+, 3, \*\]"),
    (_agents, {}, r"s has shape \[\d+, 2, 7\], expected \[\d+, 3, \*\]"),
    (_nan_obs, {}, r"o holds 1 NaN or infinite values in episode 0, first at row 3"),
    (_nan_action, {}, r"a holds NaN or infinite values, first at row 6"),
    (_no_episode, {}, r"d has no row with d = 1, so the file holds no complete episode"),
    (_double_delimiter, {}, r"d marks row 5 as an episode delimiter \(d = 1\) right after another delimiter"),
    (_odd_done, {}, r"d holds 2.0 at row 2, expected 0 or 1"),
    (lambda a: None, {"episode_limit": 5}, r"d: episode 1 \(rows 5-11\) has 6 steps, more than episode_limit=5"),
])
def test_corrupt_files_fail_clearly_and_leave_nothing(tmp_path, corrupt, options, match):
    arrays, _ = omiga_layout()
    corrupt(arrays)
    src = write_h5(tmp_path / "src" / "Hopper-v2-3x1-expert.hdf5", arrays)
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=match) as info:
        import_dataset("omiga", src, out, progress=False, **{"episode_limit": LIMIT, **options})
    assert str(src) in str(info.value)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    src = tmp_path / "Ant-v2-2x4-expert.hdf5"
    src.write_bytes(b"\x89PNG\r\n")
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=r"Ant-v2-2x4-expert\.hdf5: not a readable HDF5 file"):
        import_dataset("omiga", src, out, progress=False)
    assert not out.parent.exists()


def test_cli_import_validate_and_fit(source, cli_round_trip):
    cli_round_trip("omiga", source)
