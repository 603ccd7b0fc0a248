"""The SMAC adapter. SMAC needs oxwhirl/smac plus the StarCraft II binary and maps, which no pip extra
provides: the install-hint tests run everywhere, the battle tests only where SMAC and StarCraft II are
installed (they skip with the reason otherwise)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from logo.envs import make_env
from logo.envs.base import MissingExtraError
from logo.envs.episodes import run_episodes
from logo.envs.policies import RandomPolicy
from logo.errors import LogoError


def test_module_imports_without_smac():
    from logo.envs import smac

    assert smac.SCENARIOS == ("3m", "2s3z", "5m_vs_6m", "3s_vs_5z", "6h_vs_8z")
    assert callable(smac.make) and not hasattr(smac, "scripted_policy")


def test_missing_smac_says_how_to_install(monkeypatch):
    for name in ("smac", "smac.env"):  # both, in case SMAC is installed and already imported
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError) as err:
        make_env("smac", "3m")
    message = str(err.value)
    assert "'smac'" in message and "not installed" in message
    assert "pip install git+https://github.com/oxwhirl/smac.git" in message
    assert "StarCraft II" in message and "SC2PATH" in message and "SMAC_Maps" in message
    assert "logo[smac]" not in message  # SMAC is not a pip extra of logo


# ---- real battles: only where SMAC and StarCraft II are installed ----

def _sc2_path() -> Path:
    return Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))


@pytest.fixture(scope="module")
def smac_module():
    pytest.importorskip("smac.env", reason="needs oxwhirl/smac (pip install git+https://github.com/oxwhirl/smac.git) "
                                           "and StarCraft II; not a pip extra of logo")
    if importlib.util.find_spec("smac.env.starcraft2") is None:
        pytest.skip("the installed 'smac' package is not oxwhirl/smac")
    if not _sc2_path().is_dir():
        pytest.skip(f"StarCraft II not found at {_sc2_path()} (set SC2PATH)")
    from logo.envs import smac

    return smac


@pytest.fixture(scope="module")
def env2(smac_module):
    env = smac_module.make("3m", num_envs=2)
    yield env
    env.close()


def test_spec_3m(env2):
    spec = env2.spec
    assert (spec.family, spec.scenario, spec.n_agents, spec.n_actions, spec.max_steps) == ("smac", "3m", 3, 9, 60)
    assert spec.discrete and spec.has_win and spec.notes["n_enemies"] == 3
    assert spec.obs_dim > 0 and spec.state_dim > 0 and spec.obs_mask.all()
    assert "shared" in spec.notes["team_reward"]


def test_timestep_fields(env2):
    ts = env2.reset([0, 1])
    for step in range(3):
        assert ts.obs.shape == (2, 3, env2.spec.obs_dim) and ts.obs.dtype == np.float32
        assert ts.state.shape == (2, env2.spec.state_dim) and ts.state.dtype == np.float32
        assert ts.avail_actions.shape == (2, 3, 9) and ts.avail_actions.dtype == bool
        assert ts.avail_actions.any(-1).all()
        assert ts.reward.dtype == np.float32 and ts.reward.shape == (2,)
        assert ts.terminated.dtype == bool and ts.truncated.dtype == bool and ts.info["won"].dtype == bool
        if step == 0:
            assert (ts.reward == 0).all() and not ts.done.any()
            assert not ts.avail_actions[..., 0].any()  # nobody is dead: no-op is illegal
        ts = env2.step(RandomPolicy(env2.spec, seed=step).act(ts))


def test_random_episodes_make_a_valid_dataset(env2, tmp_path):
    from logo.data.schema import DatasetSpec
    from logo.data.validate import validate_dataset
    from logo.data.writer import DatasetWriter

    episodes = list(run_episodes(env2, RandomPolicy(env2.spec, seed=0), [0, 1, 2]))
    path = tmp_path / "smac_random.zarr"
    with DatasetWriter(path, spec=DatasetSpec.from_env(env2.spec, quality="random", behaviour="random")) as writer:
        for e in episodes:
            assert np.take_along_axis(e.avail_actions, e.actions[..., None], -1).all()
            assert 0 < e.length <= 60
            if e.won:
                assert e.terminated
            if not e.terminated:
                assert e.length == 60  # truncated only by the time limit
            writer.add_episode(**e.writer_kwargs())
    assert validate_dataset(path) == []


def test_finished_copies_freeze(env2):
    policy = RandomPolicy(env2.spec, seed=1)
    ts = env2.reset([3, 4])
    final = {}
    for _ in range(61):
        ts = env2.step(policy.act(ts))
        for b in np.flatnonzero(ts.done):
            if b in final:
                np.testing.assert_array_equal(ts.obs[b], final[b].obs[b])
                np.testing.assert_array_equal(ts.state[b], final[b].state[b])
                assert ts.reward[b] == 0 and ts.terminated[b] == final[b].terminated[b]
            else:
                final[b] = ts
        if ts.done.all():
            break
    assert ts.done.all()
    assert not (ts.terminated & ts.truncated).any()


def test_illegal_actions_are_refused(env2):
    ts = env2.reset([5, 6])
    with pytest.raises(ValueError, match="expected shape"):
        env2.step(np.zeros((2, 2), np.int64))
    noop = np.full((2, 3), 1)
    noop[1, 2] = 0  # no-op is for dead agents only
    with pytest.raises(ValueError, match="agent 2 of copy 1 took action 0, which avail_actions marks illegal"):
        env2.step(noop)
    assert ts.avail_actions[..., 1].all()
    env2.step(np.full((2, 3), 1))  # stop is legal for living agents


def test_bad_scenario_and_options(smac_module):
    with pytest.raises(LogoError, match="smac scenario: expected a SMAC map"):
        smac_module.make("not_a_map")
    with pytest.raises(LogoError, match=r"smac options: unknown \['max_steps'\]"):
        smac_module.make("3m", max_steps=10)
