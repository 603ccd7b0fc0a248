"""OMIGA SMAC import: a folder of per-episode torch.save files of per-agent [g, o, a, r, d, ava] steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from logo.data import OfflineDataset, gather_transitions
from logo.data.importers import ImportFormatError, import_dataset, read_source
from logo.data.importers.omiga import natural_key
from logo.data.validate import validate_dataset

N, OBS, STATE, ACT, LIMIT = 3, 5, 6, 4, 6
# file name -> (steps, every agent done at the last step); natural order ep_1, ep_2, ep_9, ep_10
EPISODES = {"ep_1": (4, True), "ep_2": (6, True), "ep_9": (5, False), "ep_10": (3, True)}
TERMINATED = [True, False, False, True]  # ep_2 reaches episode_limit; ep_9 does not end with d set
KEPT = [4, 5, 4, 3]  # truncated episodes give up their last step


def make_episode(length: int, done_at_end: bool, seed: int) -> dict[str, np.ndarray]:
    """Arrays [L, N, ...] of one episode: agent-specific state (common part + agent id), legal actions."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(length, STATE - N)).astype(np.float32)
    ids = np.broadcast_to(np.eye(N, dtype=np.float32), (length, N, N))
    avail = (rng.random((length, N, ACT)) < 0.6).astype(np.float32)
    avail[..., 0] = 1.0  # no-op always available
    actions = np.array([[rng.choice(np.flatnonzero(avail[t, i])) for i in range(N)] for t in range(length)])
    team = rng.normal(size=length).astype(np.float32)
    done = np.zeros((length, N), bool)
    done[-1] = done_at_end
    if seed == 3:
        done[1:, 2] = True  # agent 2 dies at step 1 (SMAC marks dead agents done)
    return {"g": np.concatenate([np.repeat(common[:, None], N, 1), ids], -1),
            "o": rng.normal(size=(length, N, OBS)).astype(np.float32), "a": actions,
            "r": team[:, None] + 0.5 * np.arange(N, dtype=np.float32)[None], "d": done, "ava": avail}


def to_steps(ep: dict[str, np.ndarray]) -> list:
    """OMIGA's on-disk structure: a list over agents of [g, o, [a], r, d, ava] steps."""
    length = len(ep["o"])
    return [[[ep["g"][t, i], ep["o"][t, i], [int(ep["a"][t, i])], np.array([ep["r"][t, i]], np.float32),
              bool(ep["d"][t, i]), ep["ava"][t, i]] for t in range(length)] for i in range(N)]


def write_folder(root: Path, corrupt=None) -> tuple[Path, list[dict[str, np.ndarray]]]:
    folder = root / "3m" / "good"
    folder.mkdir(parents=True)
    eps = []
    for seed, (name, (length, done)) in enumerate(EPISODES.items()):
        ep = make_episode(length, done, seed)
        steps = to_steps(ep)
        if corrupt is not None and seed == 2:
            corrupt(steps)
        torch.save(steps, folder / name)
        eps.append(ep)
    return folder, eps


@pytest.fixture
def source(tmp_path):
    return write_folder(tmp_path / "src")


def test_natural_file_order():
    assert sorted(["ep_10", "ep_2", "ep_1", "ep_9"], key=natural_key) == ["ep_1", "ep_2", "ep_9", "ep_10"]


def test_values_round_trip_exactly(source, tmp_path):
    folder, eps = source
    out, report = import_dataset("omiga", folder, tmp_path / "out" / "data.zarr", progress=False,
                                 episode_limit=LIMIT)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    assert data.n_episodes == 4
    assert np.diff(data.episode_bounds()).tolist() == KEPT
    arr = data.arrays
    kept = [{k: v[:n] for k, v in ep.items()} for ep, n in zip(eps, KEPT)]
    cat = {k: np.concatenate([ep[k] for ep in kept]) for k in kept[0]}
    np.testing.assert_array_equal(arr["observations"], cat["o"])
    np.testing.assert_array_equal(arr["state"], cat["g"][:, 0])
    np.testing.assert_array_equal(arr["actions"], cat["a"])
    assert arr["actions"].dtype == np.int64 and arr["avail_actions"].dtype == bool
    np.testing.assert_array_equal(arr["avail_actions"], cat["ava"].astype(bool))
    np.testing.assert_array_equal(arr["rewards"], cat["r"][:, 0])
    np.testing.assert_array_equal(arr["agent_rewards"], cat["r"])
    # the final observation is each episode's last stored step: repeated (terminated) or given up (truncated)
    np.testing.assert_array_equal(arr["final_observations"], np.stack([ep["o"][-1] for ep in eps]))
    np.testing.assert_array_equal(arr["final_state"], np.stack([ep["g"][-1, 0] for ep in eps]))
    np.testing.assert_array_equal(arr["final_avail_actions"], np.stack([ep["ava"][-1] for ep in eps]).astype(bool))

    storage = data.storage()
    starts = arr["episode_starts"]
    b = gather_transitions(storage, torch.tensor([int(starts[1]) + 2]))  # inside episode ep_2
    np.testing.assert_array_equal(b["obs"][0].numpy(), eps[1]["o"][2])
    np.testing.assert_array_equal(b["next_obs"][0].numpy(), eps[1]["o"][3])
    np.testing.assert_array_equal(b["next_state"][0].numpy(), eps[1]["g"][3, 0])
    np.testing.assert_array_equal(b["actions"][0].numpy(), eps[1]["a"][2])
    assert b["rewards"].item() == eps[1]["r"][2, 0]
    assert b["terminals"].item() == 0 and b["truncations"].item() == 0

    last = torch.as_tensor(starts + np.array(KEPT) - 1)
    b = gather_transitions(storage, last)
    assert b["terminals"].tolist() == [float(t) for t in TERMINATED]
    assert b["truncations"].tolist() == [float(not t) for t in TERMINATED]
    for e, ep in enumerate(eps):  # truncated: next = the given-up last step; terminated: its own last step
        np.testing.assert_array_equal(b["next_obs"][e].numpy(), ep["o"][-1])
        np.testing.assert_array_equal(b["next_avail_actions"][e].numpy(), ep["ava"][-1].astype(bool))

    spec = data.spec
    assert (spec.env_family, spec.scenario, spec.quality) == ("smac", "3m", "good")
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions) == (N, OBS, STATE, ACT)
    mapping = "\n".join(report.mapping)
    assert "agents' g differ in 3 of 6 features" in mapping
    assert "agents' rewards differ on 18 steps" in mapping
    assert "truncated at exactly that length (1)" in mapping and "(2 truncated, 2 terminated)" in mapping
    assert "1 episodes have such steps" in mapping
    assert data.attrs["import"]["options"] == {"episode_limit": LIMIT}


def test_without_episode_limit_only_d_decides(source, tmp_path):
    folder, _ = source
    report = read_source("omiga", folder, scenario="3m_v1", quality="replay", env="smac_v1")
    assert report.n_episodes == 4
    episodes = list(report.episodes())
    assert [e.terminated for e in episodes] == [True, True, False, True]
    assert [len(e) for e in episodes] == [4, 6, 4, 3]
    assert (report.spec.env_family, report.spec.scenario, report.spec.quality) == ("smac_v1", "3m_v1", "replay")


def _ragged(steps):
    steps[1].pop()  # agent 1 one step shorter


def _five_items(steps):
    steps[0][2] = steps[0][2][:5]


def _nan_obs(steps):
    steps[2][1][1] = np.full(OBS, np.nan, np.float32)


def _illegal(steps):
    steps[0][0][5] = np.zeros(ACT, np.float32)
    steps[0][0][5][0] = 1.0
    steps[0][0][2] = [ACT - 1]


def _outside(steps):
    steps[1][3][2] = [ACT]


def _not_a_list(steps):
    steps.clear()


@pytest.mark.parametrize(("corrupt", "match"), [
    (_ragged, r"different lengths \[5, 4, 5\]"),
    (_five_items, r"agent 0, step 2: expected a 6-item list \[g, o, a, r, d, ava\], got 5 items"),
    (_nan_obs, r"o holds 5 NaN or infinite values, first at step 1, agent 2"),
    (_illegal, r"a holds action 3 at step 0, agent 0, which ava marks unavailable"),
    (_outside, r"a holds action 4 at step 3, agent 1, outside \[0, 4\)"),
    (_not_a_list, r"expected a list over agents"),
])
def test_corrupt_files_fail_clearly_and_leave_nothing(tmp_path, corrupt, match):
    folder, _ = write_folder(tmp_path / "src", corrupt)
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=match) as info:
        import_dataset("omiga", folder, out, progress=False, episode_limit=LIMIT)
    assert str(folder / "ep_9") in str(info.value)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_unreadable_file_and_long_episode(tmp_path):
    folder, _ = write_folder(tmp_path / "src")
    out = tmp_path / "out" / "data.zarr"
    with pytest.raises(ImportFormatError, match=r"ep_2: the episode has 6 steps, more than episode_limit=5"):
        import_dataset("omiga", folder, out, progress=False, episode_limit=5)
    (folder / "ep_10").write_bytes(b"not a pickle")
    with pytest.raises(ImportFormatError, match=r"ep_10: not a readable torch.save file"):
        import_dataset("omiga", folder, out, progress=False)
    assert not out.exists()


def test_cli_import_validate_and_fit(source, cli_round_trip):
    folder, _ = source
    cli_round_trip("omiga", folder, "--episode_limit", "6")
