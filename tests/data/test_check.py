"""`logo data check`: a dataset against an environment adapter."""

from __future__ import annotations

import pytest

from logo.cli import main
from logo.data.check import compatibility_problems
from logo.data.schema import DatasetSpec
from logo.envs.base import EnvSpec

SMAX_3M = EnvSpec(family="smax", scenario="3m", n_agents=3, obs_dim=75, state_dim=72, action_kind="discrete",
                  n_actions=8, max_steps=100)


def test_every_difference_is_named_with_the_recording_env():
    smac = DatasetSpec(env_family="smac", scenario="3m", n_agents=3, obs_dim=30, state_dim=48,
                       action_kind="discrete", n_actions=9)
    assert compatibility_problems(smac, SMAX_3M) == [
        "observations: dataset 30 per agent, SMAX 3m gives 75",
        "state: dataset 48, SMAX 3m gives 72",
        "actions: dataset 9 per agent, SMAX 3m has 8",
        "this dataset was recorded on SMAC (3m) and cannot be evaluated in SMAX 3m",
    ]


def test_matching_dims_and_continuous_bounds():
    same = DatasetSpec(env_family="smax", scenario="3m", n_agents=3, obs_dim=75, state_dim=72,
                       action_kind="discrete", n_actions=8)
    assert compatibility_problems(same, SMAX_3M) == []
    env = EnvSpec(family="mamujoco", scenario="HalfCheetah-2x3", n_agents=2, obs_dim=13, state_dim=17,
                  action_kind="continuous", action_dim=3, action_low=(-1.0,) * 3, action_high=(1.0,) * 3,
                  max_steps=1000)
    data = DatasetSpec(env_family="mamujoco", scenario="HalfCheetah-2x3", n_agents=2, obs_dim=13, state_dim=17,
                       action_kind="continuous", action_dim=3, action_low=[-0.4] * 3, action_high=[0.4] * 3)
    assert compatibility_problems(data, env) == [
        "action bounds: dataset [[-0.4, -0.4, -0.4], [0.4, 0.4, 0.4]], MaMuJoCo HalfCheetah-2x3 "
        "[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]"]
    discrete = DatasetSpec(env_family="mamujoco", scenario="HalfCheetah-2x3", n_agents=2, obs_dim=13, state_dim=17,
                           action_kind="discrete", n_actions=5)
    assert compatibility_problems(discrete, env) == ["actions: dataset discrete, MaMuJoCo HalfCheetah-2x3 takes "
                                                     "continuous"]


def test_cli_check_against_a_real_environment(tmp_path, capfd):
    pytest.importorskip("mpe2", reason="needs the 'mpe' extra")
    pytest.importorskip("jaxmarl", reason="needs the 'smax' extra")
    from logo.collect import collect

    data = tmp_path / "spread.zarr"
    collect(env="mpe", scenario="simple_spread_v3", behaviour="random", quality="random", out=str(data),
            episodes=2, progress=False)
    assert main(["data", "check", str(data)]) == 0
    assert "fits mpe/simple_spread_v3" in capfd.readouterr().out
    assert main(["data", "check", str(data), "--env", "smax", "--scenario", "3m"]) == 1
    err = capfd.readouterr().err
    assert "observations: dataset 18 per agent, SMAX 3m gives 75" in err
    assert "recorded on MPE (simple_spread_v3) and cannot be evaluated in SMAX 3m" in err
