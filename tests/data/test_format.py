"""Writer/reader round trips, exact transitions at episode ends, and atomic writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from logo.data import DatasetSpec, DatasetWriter, OfflineDataset, gather_transitions
from logo.errors import LogoError

N, OBS, STATE, ACTS = 2, 4, 5, 3


def _spec(kind: str) -> DatasetSpec:
    if kind == "discrete":
        return DatasetSpec(env_family="test", scenario="roundtrip", n_agents=N, obs_dim=OBS, state_dim=STATE,
                           action_kind="discrete", n_actions=ACTS, quality="medium", behaviour="random")
    return DatasetSpec(env_family="test", scenario="roundtrip", n_agents=N, obs_dim=OBS, state_dim=STATE,
                       action_kind="continuous", action_dim=2, action_low=[-1.0, -2.0], action_high=[1.0, 2.0])


def _episodes(kind: str, lengths: list[int], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    episodes = []
    for i, length in enumerate(lengths):
        ep = {
            "observations": rng.normal(size=(length, N, OBS)).astype(np.float32),
            "state": rng.normal(size=(length, STATE)).astype(np.float32),
            "rewards": rng.normal(size=length).astype(np.float32),
            "final_observation": rng.normal(size=(N, OBS)).astype(np.float32),
            "final_state": rng.normal(size=STATE).astype(np.float32),
            "terminated": i % 2 == 0,
            "agent_rewards": rng.normal(size=(length, N)).astype(np.float32),
        }
        ep["observations"][..., -1] = 0.0  # last feature is padding for every agent (see obs_mask below)
        ep["final_observation"][..., -1] = 0.0
        if kind == "discrete":
            ep["avail_actions"] = np.ones((length, N, ACTS), bool)
            ep["avail_actions"][:, 0, 2] = False  # agent 0 may never take action 2
            ep["actions"] = rng.integers(0, 2, size=(length, N))
            ep["final_avail_actions"] = ep["avail_actions"][-1]
        else:
            ep["actions"] = rng.uniform([-1, -2], [1, 2], size=(length, N, 2)).astype(np.float32)
        episodes.append(ep)
    return episodes


def _write(path, kind, episodes, **kwargs):
    mask = np.ones((N, OBS), bool)
    mask[:, -1] = False
    with DatasetWriter(path, spec=_spec(kind), **kwargs) as writer:
        writer.set_obs_mask(mask)
        for ep in episodes:
            writer.add_episode(**ep)
    return path


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_round_trip_is_exact(tmp_path, kind):
    lengths = [7, 1, 12, 5]
    episodes = _episodes(kind, lengths)
    path = _write(tmp_path / "d.zarr", kind, episodes, chunk_steps=8)  # several chunks, partial flushes
    data = OfflineDataset.load(path)
    assert data.n_transitions == sum(lengths) and data.n_episodes == len(lengths)
    assert data.attrs["quality"] == _spec(kind).quality and data.attrs["n_transitions"] == sum(lengths)
    assert data.spec == _spec(kind)
    starts = np.cumsum([0] + lengths[:-1])
    np.testing.assert_array_equal(data.arrays["episode_starts"], starts)
    for key in ("observations", "state", "actions", "rewards", "agent_rewards"):
        expected = np.concatenate([ep[key] for ep in episodes])
        np.testing.assert_array_equal(data.arrays[key], expected)
        assert data.arrays[key].dtype == expected.dtype
    assert data.arrays["actions"].dtype == (np.int64 if kind == "discrete" else np.float32)
    finals = np.stack([e["final_observation"] for e in episodes])
    np.testing.assert_array_equal(data.arrays["final_observations"], finals)
    ends = starts + np.array(lengths) - 1
    assert np.flatnonzero(data.arrays["terminals"]).tolist() == [e for e, ep in zip(ends, episodes) if ep["terminated"]]
    assert np.flatnonzero(data.arrays["truncations"]).tolist() == [
        e for e, ep in zip(ends, episodes) if not ep["terminated"]]
    assert not data.arrays["obs_mask"][:, -1].any() and data.arrays["obs_mask"][:, :-1].all()
    np.testing.assert_allclose(data.episode_returns(), [ep["rewards"].sum() for ep in episodes], rtol=1e-5)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_next_observation_is_exact_at_episode_ends(tmp_path, kind):
    lengths = [3, 4, 2]
    episodes = _episodes(kind, lengths)
    data = OfflineDataset.load(_write(tmp_path / "d.zarr", kind, episodes))
    storage = data.storage()
    batch = gather_transitions(storage, torch.arange(data.n_transitions))
    t = 0
    for ep in episodes:
        for step in range(len(ep["rewards"])):
            last = step == len(ep["rewards"]) - 1
            next_obs = ep["final_observation"] if last else ep["observations"][step + 1]
            next_state = ep["final_state"] if last else ep["state"][step + 1]
            np.testing.assert_array_equal(batch["next_obs"][t].numpy(), next_obs)
            np.testing.assert_array_equal(batch["next_state"][t].numpy(), next_state)
            assert batch["terminals"][t] == float(last and ep["terminated"])
            assert batch["truncations"][t] == float(last and not ep["terminated"])
            if kind == "discrete":
                next_avail = ep["final_avail_actions"] if last else ep["avail_actions"][step + 1]
                np.testing.assert_array_equal(batch["next_avail_actions"][t].numpy(), next_avail)
            t += 1


def test_writer_rejects_bad_episode_shapes_naming_the_argument(tmp_path):
    ep = _episodes("discrete", [4])[0]
    with DatasetWriter(tmp_path / "d.zarr", spec=_spec("discrete")) as writer:
        with pytest.raises(ValueError, match=r"state: expected shape \(4, 5\)"):
            writer.add_episode(**{**ep, "state": ep["state"][:, :3]})
        with pytest.raises(ValueError, match=r"final_observation: expected shape \(2, 4\)"):
            writer.add_episode(**{**ep, "final_observation": ep["final_observation"][:1]})
        with pytest.raises(ValueError, match="avail_actions"):
            writer.add_episode(**{**ep, "avail_actions": None})
        writer.add_episode(**ep)
    assert OfflineDataset.load(tmp_path / "d.zarr").n_transitions == 4


def test_writer_refuses_existing_target_and_overwrites_only_when_complete(tmp_path):
    path = _write(tmp_path / "d.zarr", "discrete", _episodes("discrete", [3]))
    with pytest.raises(LogoError, match="already exists"):
        DatasetWriter(path, spec=_spec("discrete"))
    # an overwrite that fails half-way leaves the old dataset untouched
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, spec=_spec("discrete"), overwrite=True) as writer:
            writer.add_episode(**_episodes("discrete", [5])[0])
            raise RuntimeError("interrupted")
    assert OfflineDataset.load(path).n_transitions == 3
    _write(path, "discrete", _episodes("discrete", [5, 6]), overwrite=True)
    assert OfflineDataset.load(path).n_transitions == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]  # no temporary folders left behind


def test_writer_does_not_replace_a_dataset_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "d.zarr"
    writer = DatasetWriter(target, spec=_spec("discrete"))
    writer.add_episode(**_episodes("discrete", [3])[0])
    _write(target, "discrete", _episodes("discrete", [5]))  # another process finished first
    with pytest.raises(LogoError, match="already exists"):
        writer.close()
    assert OfflineDataset.load(target).n_transitions == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def test_writer_never_publishes_an_invalid_dataset(tmp_path):
    ep = _episodes("discrete", [4])[0]
    ep["rewards"][2] = np.nan
    with pytest.raises(LogoError, match="rewards: 1 NaN/inf"):
        with DatasetWriter(tmp_path / "d.zarr", spec=_spec("discrete")) as writer:
            writer.add_episode(**ep)
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_dataset(tmp_path):
    target = tmp_path / "killed.zarr"
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        from logo.data import DatasetSpec, DatasetWriter
        spec = DatasetSpec(env_family="test", scenario="kill", n_agents=2, obs_dim=3, state_dim=4,
                           action_kind="discrete", n_actions=2)
        writer = DatasetWriter({str(target)!r}, spec=spec, chunk_steps=16)
        for i in range(10**6):
            writer.add_episode(observations=np.zeros((10, 2, 3)), state=np.zeros((10, 4)),
                               actions=np.zeros((10, 2), int), rewards=np.ones(10), terminated=True,
                               final_observation=np.zeros((2, 3)), final_state=np.zeros(4),
                               avail_actions=np.ones((10, 2, 2), bool), final_avail_actions=np.ones((2, 2), bool))
            if i == 20:  # several chunks are on disk by now
                print("writing", flush=True)
            time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temporaries = list(tmp_path.glob(".killed.zarr.tmp-*"))
        assert len(temporaries) == 1 and (temporaries[0] / "observations").exists()  # data was being written
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not target.exists()
    with pytest.raises(LogoError, match="no such file"):
        OfflineDataset.load(target)
    # the next writer of the same target clears what the dead one left
    ep = _episodes("discrete", [4])[0]
    with DatasetWriter(target, spec=_spec("discrete")) as writer:
        writer.add_episode(**ep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.zarr"]


def test_extra_per_step_arrays_are_written_and_checked(tmp_path):
    episodes = _episodes("continuous", [3, 4])
    with DatasetWriter(tmp_path / "extras.zarr", _spec("continuous")) as writer:
        for ep in episodes:
            writer.add_episode(**ep, extras={"uncertainty": np.arange(len(ep["rewards"]), dtype=np.float32)})
    import zarr
    assert zarr.open_group(str(tmp_path / "extras.zarr"), mode="r")["uncertainty"][:].tolist() == [0, 1, 2, 0, 1, 2, 3]
    OfflineDataset.load(tmp_path / "extras.zarr")  # readers ignore extras
    for extras, message in (({"rewards": np.zeros(3)}, "outside the format's own arrays"),
                            ({"uncertainty": np.zeros(2)}, "expected 3 rows, got 2")):
        writer = DatasetWriter(tmp_path / "bad.zarr", _spec("continuous"))
        with pytest.raises(ValueError, match=message):
            writer.add_episode(**episodes[0], extras=extras)
        writer.abort()
    writer = DatasetWriter(tmp_path / "bad.zarr", _spec("continuous"))
    writer.add_episode(**episodes[0], extras={"uncertainty": np.zeros(3)})
    with pytest.raises(ValueError, match="every episode must give the same arrays"):
        writer.add_episode(**episodes[1])
    writer.abort()
    assert not (tmp_path / "bad.zarr").exists()
