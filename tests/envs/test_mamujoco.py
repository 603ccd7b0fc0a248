"""MaMuJoCo adapter on the real gymnasium-robotics environments."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="needs the 'mamujoco' extra")

from logo.data.schema import DatasetSpec  # noqa: E402
from logo.envs import make_env  # noqa: E402
from logo.envs.base import MissingExtraError, MultiAgentEnv  # noqa: E402
from logo.envs.episodes import run_episodes  # noqa: E402
from logo.envs.policies import RandomPolicy  # noqa: E402
from logo.errors import LogoError  # noqa: E402

# scenario -> (agents, obs size of each agent, state_dim, action_dim), as gymnasium-robotics 1.4 builds them
EXPECTED = {
    "HalfCheetah-2x3": (2, [12, 12], 17, 3),
    "HalfCheetah-6x1": (6, [9, 9, 8, 9, 9, 8], 17, 1),
    "Hopper-3x1": (3, [8, 9, 8], 11, 1),
    "Ant-2x4": (2, [63, 63], 105, 4),
    "Walker2d-2x3": (2, [12, 12], 17, 3),
}


def random_joint_actions(env, rng) -> np.ndarray:
    spec = env.spec
    return rng.uniform(-1, 1, (env.num_envs, spec.n_agents, spec.action_dim)).astype(np.float32)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_spec_shapes_dtypes_and_padding(scenario):
    n_agents, obs_sizes, state_dim, action_dim = EXPECTED[scenario]
    env = make_env("mamujoco", scenario, num_envs=2)
    assert isinstance(env, MultiAgentEnv)
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.action_dim) == (n_agents, max(obs_sizes), state_dim,
                                                                             action_dim)
    assert spec.action_kind == "continuous" and spec.action_low == (-1.0,) * action_dim
    assert spec.obs_mask.sum(1).tolist() == obs_sizes
    ts = env.reset([0, 1])
    assert ts.obs.shape == (2, n_agents, spec.obs_dim) and ts.obs.dtype == np.float32
    assert ts.state.shape == (2, state_dim) and ts.state.dtype == np.float32
    assert ts.avail_actions is None and ts.reward.dtype == np.float32
    assert not ts.terminated.any() and not ts.truncated.any()
    nxt = env.step(random_joint_actions(env, np.random.default_rng(0)))
    assert nxt.reward.shape == (2,) and nxt.terminated.dtype == bool and nxt.truncated.dtype == bool
    for t in (ts, nxt):
        assert np.all(t.obs[:, ~spec.obs_mask] == 0), "padding must stay zero"
    assert np.isfinite(nxt.obs).all() and np.isfinite(nxt.state).all()
    # the dataset spec carries the scenario's layout
    dspec = DatasetSpec.from_env(spec, "random")
    assert (dspec.env_family, dspec.scenario, dspec.action_dim) == ("mamujoco", scenario, action_dim)


def play(env, seeds, steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    out = [env.reset(seeds)]
    for _ in range(steps):
        out.append(env.step(random_joint_actions(env, rng)))
    return out


def test_same_seed_same_episode_and_different_seed_differs():
    env = make_env("mamujoco", "HalfCheetah-2x3")
    a, b, c = play(env, [3], 30), play(env, [3], 30), play(env, [4], 30)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.obs, y.obs)
        np.testing.assert_array_equal(x.state, y.state)
        np.testing.assert_array_equal(x.reward, y.reward)
    assert not np.array_equal(a[0].state, c[0].state)


def test_copies_are_independent_and_match_single_runs():
    batched = make_env("mamujoco", "Hopper-3x1", num_envs=2)
    single = make_env("mamujoco", "Hopper-3x1")
    rng = np.random.default_rng(5)
    actions = rng.uniform(-1, 1, (20, 2, 3, 1)).astype(np.float32)
    ts = batched.reset([7, 8])
    traj = [ts]
    for t in range(20):
        traj.append(batched.step(actions[t]))
    for b, seed in enumerate([7, 8]):
        s = single.reset([seed])
        np.testing.assert_array_equal(s.obs[0], traj[0].obs[b])
        for t in range(20):
            if traj[t].done[b]:
                break
            s = single.step(actions[t, b][None])
            np.testing.assert_array_equal(s.obs[0], traj[t + 1].obs[b])
            np.testing.assert_array_equal(s.reward[0], traj[t + 1].reward[b])


def test_truncation_at_time_limit_is_not_termination():
    env = make_env("mamujoco", "HalfCheetah-6x1", max_episode_steps=12)
    (episode,) = run_episodes(env, RandomPolicy(env.spec, 0), [0])
    assert episode.length == 12 and not episode.terminated
    assert env.spec.max_steps == 12


def test_fall_terminates_and_finished_copy_is_frozen():
    env = make_env("mamujoco", "Hopper-3x1", num_envs=2)
    rng = np.random.default_rng(0)
    ts = env.reset([0, 1])
    for _ in range(1000):
        ts = env.step(random_joint_actions(env, rng))
        if ts.done.any():
            break
    b = int(np.flatnonzero(ts.done)[0])
    assert ts.terminated[b] and not ts.truncated[b], "a fallen hopper terminates"
    frozen = env.step(random_joint_actions(env, rng))
    np.testing.assert_array_equal(frozen.obs[b], ts.obs[b])
    np.testing.assert_array_equal(frozen.state[b], ts.state[b])
    assert frozen.reward[b] == 0 and frozen.terminated[b] and not frozen.truncated[b]


def test_team_reward_is_the_shared_gym_reward_not_a_sum():
    env = make_env("mamujoco", "HalfCheetah-2x3")
    env.reset([0])
    action = np.full((1, 2, 3), 0.5, np.float32)
    ts = env.step(action)
    raw = env._envs[0]
    single = raw.single_agent_env
    single.reset(seed=0)
    _, reward, *_ = single.step(raw.map_local_actions_to_global_action(
        {a: action[0, i] for i, a in enumerate(env.spec.agent_names)}))
    assert ts.reward[0] == pytest.approx(reward, rel=1e-6)


def test_bad_input_gives_clear_errors():
    with pytest.raises(LogoError, match="ROBOT-PARTITION"):
        make_env("mamujoco", "HalfCheetah")
    with pytest.raises(LogoError, match="gymnasium-robotics cannot build"):
        make_env("mamujoco", "HalfCheetah-5x5")
    with pytest.raises(LogoError, match="unknown.*colour"):
        make_env("mamujoco", "Hopper-3x1", colour="red")
    with pytest.raises(LogoError, match="max_episode_steps"):
        make_env("mamujoco", "Hopper-3x1", max_episode_steps=0)
    env = make_env("mamujoco", "Hopper-3x1")
    env.reset([0])
    with pytest.raises(ValueError, match=r"actions: expected shape \(1, 3, 1\)"):
        env.step(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="seeds: expected 1"):
        env.reset([0, 1])


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'logo\[mamujoco\]'"):
        make_env("mamujoco", "Hopper-3x1")
