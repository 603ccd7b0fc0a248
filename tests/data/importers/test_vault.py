"""og-marl / flashbax vault import: fixtures written with tensorstore in the published layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from logo.data.importers import ImportFormatError, import_dataset
from logo.data.reader import OfflineDataset, gather_transitions
from logo.data.validate import validate_dataset

ts = pytest.importorskip("tensorstore", reason="needs the 'vault' extra")
DECLARED = int(10e12)  # flashbax declares a time axis of 1e13 steps


def write_vault(uid_dir: Path, leaves: dict[tuple[str, ...], np.ndarray], version: float = 1.2) -> Path:
    """Write ``leaves`` ({path: [T, ...]}) as a flashbax vault: zarr v2 arrays in one OCDBT store, names with a
    trailing dot, batch axis 1, a time axis declared far longer than T, and ``vault_index`` = T."""
    uid_dir.mkdir(parents=True)
    base = f"file://{uid_dir.resolve()}"
    shape_tree: dict = {}
    dtype_tree: dict = {}
    for path, data in leaves.items():
        node_s, node_d = shape_tree, dtype_tree
        for key in path[:-1]:
            node_s, node_d = node_s.setdefault(key, {}), node_d.setdefault(key, {})
        node_s[path[-1]] = str((1, 5000, *data.shape[1:]))
        node_d[path[-1]] = str(data.dtype)
        store = ts.open({"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": base, "path": ".".join(path) + "."},
                         "metadata": {"compressor": {"id": "gzip", "level": 5}}},
                        create=True, dtype=str(data.dtype), shape=(1, DECLARED, *data.shape[1:])).result()
        store[0, :len(data)].write(data).result()
    index = ts.open({"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": base, "path": "vault_index"}},
                    create=True, dtype="int32", shape=(1,)).result()
    index.write(np.array([len(next(iter(leaves.values())))], np.int32)).result()
    if version >= 1:
        metadata = {"version": version, "structure_shape": shape_tree, "structure_dtype": dtype_tree}
    else:
        def pairs(s, d):
            return {k: pairs(s[k], d[k]) if isinstance(s[k], dict) else [s[k], d[k]] for k in s}
        metadata = {"version": version, "structure": pairs(shape_tree, dtype_tree)}
    (uid_dir / "metadata.json").write_text(json.dumps(metadata))
    return uid_dir


def smac_like(t_ends=(4, 9, 13), tail=2, n=3, obs_dim=5, n_actions=4, state_dim=6, seed=0):
    """Discrete SMAC-like leaves: episodes ending at the given steps (terminal flags), then an unfinished tail."""
    rng = np.random.default_rng(seed)
    t = t_ends[-1] + 1 + tail
    legals = rng.random((t, n, n_actions)) < 0.7
    legals[..., 0] = True
    actions = np.array([[rng.choice(np.flatnonzero(legals[i, j])) for j in range(n)] for i in range(t)], np.int32)
    team = rng.normal(size=t).astype(np.float32)
    terminals = np.zeros((t, n), np.float32)
    terminals[list(t_ends)] = 1.0
    return {
        ("observations",): rng.normal(size=(t, n, obs_dim)).astype(np.float32),
        ("actions",): actions,
        ("rewards",): np.repeat(team[:, None], n, 1),
        ("terminals",): terminals,
        ("truncations",): np.zeros((t, n), np.float32),
        ("infos", "state"): rng.normal(size=(t, state_dim)).astype(np.float32),
        ("infos", "legals"): legals.astype(np.float32),
    }


def test_discrete_vault_round_trips_exactly(tmp_path):
    leaves = smac_like()
    uid = write_vault(tmp_path / "vaults/og_marl/smac_v1/3m.vlt/Good", leaves)
    out, source = import_dataset("og-marl", uid.parent, tmp_path / "3m.zarr", progress=False)
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    spec = data.spec
    assert (spec.env_family, spec.scenario, spec.quality, spec.action_kind, spec.n_actions) == \
        ("smac", "3m", "good", "discrete", 4)
    # three terminated episodes of 5, 5 and 4 steps; the 2-step tail is dropped
    assert data.episode_bounds().tolist() == [0, 5, 10, 14]
    assert data.arrays["terminals"].sum() == 3 and data.arrays["truncations"].sum() == 0
    assert any("last 2 steps" in line for line in source.mapping)
    storage = data.storage()
    b = gather_transitions(storage, torch.tensor([6]))  # episode 1, step 1 = vault row 6
    np.testing.assert_array_equal(b["obs"][0].numpy(), leaves[("observations",)][6])
    np.testing.assert_array_equal(b["next_obs"][0].numpy(), leaves[("observations",)][7])
    np.testing.assert_array_equal(b["state"][0].numpy(), leaves[("infos", "state")][6])
    np.testing.assert_array_equal(b["actions"][0].numpy(), leaves[("actions",)][6])
    np.testing.assert_array_equal(b["avail_actions"][0].numpy(), leaves[("infos", "legals")][6] > 0)
    assert b["rewards"].item() == pytest.approx(leaves[("rewards",)][6, 0])
    np.testing.assert_array_equal(data.arrays["agent_rewards"][6], leaves[("rewards",)][6])
    # terminal step: the final observation is the last one repeated (never bootstrapped)
    last = gather_transitions(storage, torch.tensor([9]))
    assert last["terminals"].item() == 1.0
    np.testing.assert_array_equal(data.arrays["final_observations"][1], leaves[("observations",)][9])


def test_time_limit_ends_become_truncations_and_give_up_their_last_step(tmp_path):
    leaves = smac_like(t_ends=(4, 9), tail=0)
    truncations = np.zeros((10, 3), np.float32)
    truncations[9] = 1.0  # episode 2 ends by the time limit (og-marl MPE / MaMuJoCo vaults)
    leaves[("terminals",)][9] = 0.0
    leaves[("truncations",)] = truncations
    uid = write_vault(tmp_path / "mpe/simple_spread.vlt/Medium", leaves)
    out, _ = import_dataset("og-marl", uid, tmp_path / "a.zarr", progress=False)
    data = OfflineDataset.load(out)
    assert data.episode_bounds().tolist() == [0, 5, 9]  # 5 steps, then 4 (its 5th step gave its observation)
    assert data.arrays["terminals"].tolist()[4] and data.arrays["truncations"].tolist()[8]
    np.testing.assert_array_equal(data.arrays["final_observations"][1], leaves[("observations",)][9])
    np.testing.assert_array_equal(data.arrays["final_state"][1], leaves[("infos", "state")][9])
    # SMAC vaults flag time-limit ends as terminals: episode_limit relabels them
    uid = write_vault(tmp_path / "smac_v1/3m.vlt/Good", smac_like(t_ends=(4, 9), tail=0))
    out, source = import_dataset("og-marl", uid, tmp_path / "b.zarr", progress=False, episode_limit=5)
    data = OfflineDataset.load(out)
    assert data.arrays["terminals"].sum() == 0 and data.arrays["truncations"].sum() == 2
    assert any("2 episodes of exactly episode_limit=5" in line for line in source.mapping)


def test_continuous_vault_without_legals_with_per_agent_state_and_padded_obs(tmp_path):
    rng = np.random.default_rng(1)
    t, n = 12, 2
    obs = rng.normal(size=(t, n, 4)).astype(np.float32)
    obs[:, 1, 3] = -np.inf  # agent 1 has one feature fewer, padded with -inf
    state = np.repeat(rng.normal(size=(t, 1, 5)).astype(np.float32), n, 1)
    truncations = np.zeros((t, n), np.float32)
    truncations[[5, 11]] = 1
    leaves = {("observations",): obs, ("actions",): rng.uniform(-1.2, 1.2, (t, n, 3)).astype(np.float32),
              ("rewards",): rng.normal(size=(t, n)).astype(np.float32), ("terminals",): np.zeros((t, n), np.float32),
              ("truncations",): truncations, ("infos", "state"): state}
    uid = write_vault(tmp_path / "omar/mamujoco/2halfcheetah.vlt/Expert", leaves, version=0.1)
    out, source = import_dataset("og-marl", uid, tmp_path / "c.zarr", progress=False, team_reward="sum")
    assert validate_dataset(out) == []
    data = OfflineDataset.load(out)
    assert data.spec.action_kind == "continuous" and data.spec.action_dim == 3 and data.spec.env_family == "mamujoco"
    assert data.arrays["obs_mask"].tolist() == [[True] * 4, [True, True, True, False]]
    assert (data.arrays["observations"][:, 1, 3] == 0).all()
    assert np.abs(data.arrays["actions"]).max() <= 1.0
    np.testing.assert_allclose(data.arrays["rewards"][0], leaves[("rewards",)][0].sum(), rtol=1e-6)
    np.testing.assert_array_equal(data.arrays["state"][2], state[2, 0])
    assert any("agent 0's row is the global state (all agents equal)" in line for line in source.mapping)
    assert any("clipped" in line for line in source.mapping)


def test_actions_with_a_trailing_axis_and_per_agent_rewards(tmp_path):
    leaves = smac_like(t_ends=(4, 9), tail=0)
    leaves[("actions",)] = leaves[("actions",)][..., None]  # [T, N, 1], seen in the wild
    leaves[("rewards",)] = np.random.default_rng(3).normal(size=(10, 3)).astype(np.float32)
    uid = write_vault(tmp_path / "smac_v1/3m.vlt/Good", leaves)
    out, source = import_dataset("og-marl", uid, tmp_path / "d.zarr", progress=False)
    data = OfflineDataset.load(out)
    np.testing.assert_array_equal(data.arrays["actions"], leaves[("actions",)][..., 0])
    np.testing.assert_array_equal(data.arrays["rewards"], leaves[("rewards",)][:, 0])  # agent 0, as og-marl returns
    np.testing.assert_array_equal(data.arrays["agent_rewards"], leaves[("rewards",)])
    assert any("team reward = agent0" in line and "agents receive different rewards" in line
               for line in source.mapping)


def test_corrupt_vaults_fail_clearly_and_write_nothing(tmp_path):
    leaves = smac_like()
    del leaves[("rewards",)]
    uid = write_vault(tmp_path / "smac_v1/3m.vlt/Good", leaves)
    out = tmp_path / "bad.zarr"
    with pytest.raises(ImportFormatError, match=r"missing array\(s\) 'rewards\.'"):
        import_dataset("og-marl", uid, out, progress=False)
    leaves = smac_like()
    leaves[("observations",)][3, 1, 2] = np.nan
    uid = write_vault(tmp_path / "smac_v1/3m.vlt/Nan", leaves)
    with pytest.raises(ImportFormatError, match="step 3, agent 1, feature 2"):
        import_dataset("og-marl", uid, out, progress=False)
    (uid / "metadata.json").write_text("{not json")
    with pytest.raises(ImportFormatError, match="metadata.json: not valid JSON"):
        import_dataset("og-marl", uid, out, progress=False)
    with pytest.raises(ImportFormatError, match="holds several vaults"):
        import_dataset("og-marl", tmp_path / "smac_v1/3m.vlt", out, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".bad.zarr*"))


def test_cli_import_validate_and_fit(tmp_path, cli_round_trip, capfd):
    from logo.cli import main

    uid = write_vault(tmp_path / "og_marl/smac_v1/3m.vlt/Good", smac_like(t_ends=(9, 19, 29, 39), tail=0))
    printed = cli_round_trip("og-marl", uid.parent, "--uid", "Good", "--episode_limit", "10")
    assert "4 episodes, validated (smac/3m, good)" in printed
    assert "4 episodes of exactly episode_limit=10" in printed
    assert main(["data", "import", "og-marl", str(uid), "--out", str(tmp_path / "cli.zarr"), "--no_progress"]) == 2
    assert "already exists" in capfd.readouterr().err
