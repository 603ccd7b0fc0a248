"""The MPE adapter against real mpe2 environments: protocol, seeding, episode ends, errors, scripted experts."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest

from logo.data.schema import DatasetSpec
from logo.envs import MultiAgentEnv, make_env
from logo.envs import scripted_policy as registry_scripted_policy
from logo.envs.base import MissingExtraError, TimeStep
from logo.envs.episodes import run_episodes
from logo.envs.policies import EpsilonPolicy, RandomPolicy
from logo.errors import LogoError

needs_mpe2 = pytest.mark.skipif(importlib.util.find_spec("mpe2") is None, reason="mpe2 (logo[mpe]) not installed")

# scenario, options, expected (n_agents, obs_dim, state_dim, action size, agent names)
CASES = {
    "spread": ("simple_spread_v3", {}, (3, 18, 54, 5, ("agent_0", "agent_1", "agent_2"))),
    "spread-cont": ("simple_spread_v3", {"continuous_actions": True},
                    (3, 18, 54, 5, ("agent_0", "agent_1", "agent_2"))),
    "spread-n4": ("simple_spread_v3", {"n_agents": 4}, (4, 24, 96, 5, ("agent_0", "agent_1", "agent_2", "agent_3"))),
    "tag": ("simple_tag_v3", {}, (3, 16, 62, 5, ("adversary_0", "adversary_1", "adversary_2"))),
    "tag-cont": ("simple_tag_v3", {"continuous_actions": True}, (3, 16, 62, 5, ("adversary_0", "adversary_1",
                                                                              "adversary_2"))),
    "world": ("simple_world_comm_v3", {}, (4, 34, 192, 20, ("leadadversary_0", "adversary_0", "adversary_1",
                                                            "adversary_2"))),
    "world-cont": ("simple_world_comm_v3", {"continuous_actions": True},
                   (4, 34, 192, 9, ("leadadversary_0", "adversary_0", "adversary_1", "adversary_2"))),
}
# the two action variants of every scenario (spread-n4 only checks the spec)
VARIANTS = ["spread", "spread-cont", "tag", "tag-cont", "world", "world-cont"]


def _make(case: str, num_envs: int = 1, **extra):
    from logo.envs import mpe

    scenario, options, _ = CASES[case]
    return mpe.make(scenario, num_envs=num_envs, **{**options, **extra})


def _random_actions(env, steps: int, seed: int) -> list[np.ndarray]:
    """A fixed sequence of random joint actions (legal for every agent)."""
    policy = RandomPolicy(env.spec, seed=seed)
    ts = env.reset([0] * env.num_envs)
    return [policy.act(ts) for _ in range(steps)]


def _play(env, seeds: list[int], actions: list[np.ndarray]) -> list[TimeStep]:
    out = [env.reset(seeds)]
    out += [env.step(a) for a in actions]
    return out


def _assert_same(a: list[TimeStep], b: list[TimeStep]) -> None:
    for x, y in zip(a, b):
        for field in ("obs", "state", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
        np.testing.assert_array_equal(x.info["agent_rewards"], y.info["agent_rewards"])


# ---------------------------------------------------------------------------------------------------------
# Missing extra and option validation


def test_import_works_and_make_names_the_extra_without_mpe2(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpe2", None)  # makes `import mpe2` raise ImportError
    monkeypatch.delitem(sys.modules, "logo.envs.mpe", raising=False)
    fresh = importlib.import_module("logo.envs.mpe")  # a module-level mpe2 import would fail here
    assert fresh.SCENARIOS == ("simple_spread_v3", "simple_tag_v3", "simple_world_comm_v3")
    with pytest.raises(MissingExtraError, match=r"mpe2.*pip install 'logo\[mpe\]'"):
        fresh.make("simple_spread_v3")
    with pytest.raises(MissingExtraError, match=r"logo\[mpe\]"):
        make_env("mpe", "simple_tag_v3", num_envs=2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scenario": "simple_push_v3"}, "mpe scenario: expected one of"),
    ({"scenario": "simple_spread_v3", "local_ratio": 0.2}, r"unknown option\(s\) \['local_ratio'\]"),
    ({"scenario": "simple_spread_v3", "continuous_actions": "yes"}, "continuous_actions: expected a bool"),
    ({"scenario": "simple_spread_v3", "max_cycles": 0}, "max_cycles: expected an integer >= 1"),
    ({"scenario": "simple_spread_v3", "max_cycles": 2.5}, "max_cycles: expected an integer >= 1"),
    ({"scenario": "simple_spread_v3", "n_agents": 0}, "n_agents: expected an integer >= 1"),
    ({"scenario": "simple_tag_v3", "n_agents": 3}, "n_agents: only simple_spread_v3"),
    ({"scenario": "simple_spread_v3", "num_envs": 0}, "num_envs: expected an integer >= 1"),
])
def test_invalid_options_raise_logo_errors(kwargs, match):
    from logo.envs import mpe

    with pytest.raises(LogoError, match=match):
        mpe.make(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# Spec and TimeStep fields


@needs_mpe2
@pytest.mark.parametrize("case", list(CASES))
def test_spec_fields(case):
    env = _make(case)
    n, obs_dim, state_dim, size, names = CASES[case][2]
    spec = env.spec
    assert isinstance(env, MultiAgentEnv)
    assert (spec.family, spec.scenario, spec.n_agents, spec.obs_dim, spec.state_dim) == (
        "mpe", CASES[case][0], n, obs_dim, state_dim)
    assert spec.agent_names == names
    assert spec.action_size == size
    assert spec.max_steps == 25 and spec.has_win is False
    assert spec.notes["team_reward"] == "sum of controlled agents' rewards"
    assert spec.notes["options"]["continuous_actions"] == (not spec.discrete)
    assert spec.notes["options"]["max_cycles"] == 25
    if CASES[case][0] == "simple_spread_v3":
        assert spec.notes["options"]["n_agents"] == n
    else:
        assert spec.notes["scripted_agents"]  # the opponents driven inside the adapter are recorded
    if spec.discrete:
        assert spec.action_kind == "discrete" and spec.action_dim is None
    else:
        assert spec.action_kind == "continuous" and spec.n_actions is None
        assert spec.action_low == (0.0,) * size and spec.action_high == (1.0,) * size
    # every controlled agent of these scenarios observes the same number of features: nothing padded
    assert spec.obs_mask.shape == (n, obs_dim) and spec.obs_mask.all()
    ds = DatasetSpec.from_env(spec, quality="expert")
    assert ds.extra["env_notes"]["options"] == spec.notes["options"] and ds.extra["max_steps"] == 25
    env.close()


@needs_mpe2
def test_obs_mask_matches_mpe2_observation_sizes():
    from mpe2 import simple_world_comm_v3

    raw = simple_world_comm_v3.parallel_env()
    env = _make("world")
    sizes = [raw.observation_space(a).shape[0] for a in env.spec.agent_names]
    np.testing.assert_array_equal(env.spec.obs_mask.sum(1), sizes)  # leader and adversaries: 34 each
    ts = env.reset([3])
    assert not ts.obs[0][~env.spec.obs_mask].any()  # padding (if any) is zero


@needs_mpe2
@pytest.mark.parametrize("case", VARIANTS)
def test_timestep_shapes_and_dtypes(case):
    env = _make(case, num_envs=2)
    spec = env.spec
    ts = env.reset([0, 1])
    for t, step in enumerate([ts] + [env.step(a) for a in _random_actions(env, 3, seed=0)]):
        assert step.obs.shape == (2, spec.n_agents, spec.obs_dim) and step.obs.dtype == np.float32
        assert step.state.shape == (2, spec.state_dim) and step.state.dtype == np.float32
        assert step.reward.shape == (2,) and step.reward.dtype == np.float32
        assert step.terminated.dtype == bool and step.truncated.dtype == bool and step.done.shape == (2,)
        agent_rewards = step.info["agent_rewards"]
        assert agent_rewards.shape == (2, spec.n_agents) and agent_rewards.dtype == np.float32
        np.testing.assert_allclose(step.reward, agent_rewards.sum(1), rtol=1e-6)
        if t == 0:
            assert not step.reward.any()
        if spec.discrete:
            assert step.avail_actions.shape == (2, spec.n_agents, spec.n_actions)
            assert step.avail_actions.dtype == bool
        else:
            assert step.avail_actions is None
    if case == "world":  # leader: Discrete(20); adversaries: Discrete(5)
        assert ts.avail_actions[:, 0].all()
        assert ts.avail_actions[:, 1:, :5].all() and not ts.avail_actions[:, 1:, 5:].any()
    elif spec.discrete:
        assert ts.avail_actions.all()


@needs_mpe2
@pytest.mark.parametrize("case", VARIANTS)
def test_state_is_mpe2_state(case):
    env = _make(case)
    actions = _random_actions(env, 3, seed=1)
    ts = env.reset([4])
    np.testing.assert_array_equal(ts.state[0], env._envs[0].state())
    for a in actions:
        ts = env.step(a)
        np.testing.assert_array_equal(ts.state[0], env._envs[0].state())


@needs_mpe2
@pytest.mark.parametrize("continuous", [False, True])
def test_spread_matches_raw_mpe2(continuous):
    """With all agents controlled, the adapter is mpe2 itself: same obs, state and rewards."""
    from mpe2 import simple_spread_v3

    env = _make("spread-cont" if continuous else "spread")
    raw = simple_spread_v3.parallel_env(continuous_actions=continuous)
    actions = _random_actions(env, 25, seed=2)
    steps = _play(env, [11], actions)
    raw_obs, _ = raw.reset(seed=11)
    np.testing.assert_array_equal(steps[0].obs[0], np.stack([raw_obs[a] for a in raw.possible_agents]))
    for ts, joint in zip(steps[1:], actions):
        raw_obs, raw_rew, _, raw_trunc, _ = raw.step(
            {a: joint[0, i] if continuous else int(joint[0, i]) for i, a in enumerate(raw.possible_agents)})
        np.testing.assert_array_equal(ts.obs[0], np.stack([raw_obs[a] for a in raw.possible_agents]))
        np.testing.assert_array_equal(ts.state[0], raw.state())
        np.testing.assert_allclose(ts.info["agent_rewards"][0], [raw_rew[a] for a in raw.possible_agents],
                                   rtol=1e-6)
        assert ts.truncated[0] == all(raw_trunc.values())


# ---------------------------------------------------------------------------------------------------------
# Seeding, episode ends, independent copies


@needs_mpe2
@pytest.mark.parametrize("case", VARIANTS)
def test_same_seed_same_episode_and_different_seeds_differ(case):
    env = _make(case, num_envs=2)
    actions = _random_actions(env, 6, seed=3)
    first = _play(env, [5, 6], actions)
    again = _play(env, [5, 6], actions)
    _assert_same(first, again)
    other = _play(env, [7, 8], actions)
    assert not np.array_equal(first[0].obs, other[0].obs)
    assert not np.array_equal(first[-1].state, other[-1].state)


@needs_mpe2
@pytest.mark.parametrize("case", VARIANTS)
def test_truncation_at_max_cycles_then_frozen(case):
    env = _make(case, num_envs=2, max_cycles=4)
    assert env.spec.max_steps == 4
    actions = _random_actions(env, 7, seed=4)
    ts = env.reset([1, 2])
    for a in actions[:3]:
        ts = env.step(a)
        assert not ts.done.any()
    last = env.step(actions[3])
    assert last.truncated.all() and not last.terminated.any()  # MPE ends by the time limit only
    for a in actions[4:]:  # finished copies ignore their actions
        ts = env.step(a)
        np.testing.assert_array_equal(ts.obs, last.obs)
        np.testing.assert_array_equal(ts.state, last.state)
        assert not ts.reward.any() and not ts.info["agent_rewards"].any()
        assert ts.truncated.all() and not ts.terminated.any()
    ts = env.reset([1, 2])  # a reset starts a fresh episode
    assert not ts.done.any()


@needs_mpe2
@pytest.mark.parametrize("case", ["spread", "spread-cont", "tag", "world-cont"])
def test_copies_are_independent_and_equal_single_runs(case):
    batched = _make(case, num_envs=3)
    actions = _random_actions(batched, 5, seed=5)
    seeds = [20, 21, 22]
    together = _play(batched, seeds, actions)
    single = _make(case, num_envs=1)
    for b, seed in enumerate(seeds):
        alone = _play(single, [seed], [a[b:b + 1] for a in actions])
        for x, y in zip(together, alone):
            np.testing.assert_array_equal(x.obs[b:b + 1], y.obs)
            np.testing.assert_array_equal(x.state[b:b + 1], y.state)
            np.testing.assert_array_equal(x.reward[b:b + 1], y.reward)
            np.testing.assert_array_equal(x.truncated[b:b + 1], y.truncated)


# ---------------------------------------------------------------------------------------------------------
# Invalid actions and seeds


@needs_mpe2
def test_invalid_seeds_and_actions_are_rejected():
    env = _make("spread", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="expected 2 seeds"):
        env.reset([0])
    with pytest.raises(ValueError, match="non-negative"):
        env.reset([0, -1])
    env.reset([0, 1])
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        env.step(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match="integer action indices"):
        env.step(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"indices in \[0, 5\)"):
        env.step(np.full((2, 3), 5))

    world = _make("world")
    world.reset([0])
    world.step(np.array([[19, 4, 0, 1]]))  # the leader has 20 actions
    with pytest.raises(ValueError, match="agent adversary_1 has 5 actions, got action 7"):
        world.step(np.array([[0, 0, 7, 0]]))

    cont = _make("spread-cont")
    cont.reset([0])
    with pytest.raises(ValueError, match="finite"):
        cont.step(np.full((1, 3, 5), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(1, 3, 5\)"):
        cont.step(np.zeros((1, 3), np.float32))


@needs_mpe2
def test_continuous_actions_are_clipped_to_the_bounds():
    env = _make("spread-cont")
    env.reset([9])
    env.step(np.full((1, 3, 5), 3.0, np.float32))
    clipped = env.step(np.full((1, 3, 5), 3.0, np.float32))
    env.reset([9])
    env.step(np.ones((1, 3, 5), np.float32))
    bounded = env.step(np.ones((1, 3, 5), np.float32))
    np.testing.assert_array_equal(clipped.obs, bounded.obs)


# ---------------------------------------------------------------------------------------------------------
# Observation layouts the scripted experts decode, checked against mpe2's world state


@needs_mpe2
def test_expert_observation_layouts_match_the_world():
    spread = _make("spread")
    ts = spread.reset([3])
    world = spread._envs[0].unwrapped.world
    obs = ts.obs[0]
    for i, agent in enumerate(world.agents):
        np.testing.assert_allclose(obs[i, 2:4], agent.state.p_pos, atol=1e-6)
        for k, landmark in enumerate(world.landmarks):
            np.testing.assert_allclose(obs[i, 4 + 2 * k:6 + 2 * k], landmark.state.p_pos - agent.state.p_pos,
                                       atol=1e-6)

    tag = _make("tag")
    actions = _random_actions(tag, 3, seed=6)
    tag.reset([3])
    for a in actions:
        ts = tag.step(a)
    world = tag._envs[0].unwrapped.world
    prey = next(a for a in world.agents if a.name == "agent_0")
    for i, name in enumerate(tag.spec.agent_names):
        me = next(a for a in world.agents if a.name == name)
        np.testing.assert_allclose(ts.obs[0, i, 12:14], prey.state.p_pos - me.state.p_pos, atol=1e-6)
        np.testing.assert_allclose(ts.obs[0, i, 14:16], prey.state.p_vel, atol=1e-6)

    comm = _make("world")
    ts = comm.reset([3])
    world = comm._envs[0].unwrapped.world
    good = [a for a in world.agents if not a.adversary]
    leader = world.agents[0]  # sees everything, even into forests
    np.testing.assert_allclose(ts.obs[0, 0, 20:24].reshape(2, 2),
                               [g.state.p_pos - leader.state.p_pos for g in good], atol=1e-6)
    np.testing.assert_allclose(ts.obs[0, 0, 10:14].reshape(2, 2),
                               [f.state.p_pos - leader.state.p_pos for f in world.forests], atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Scripted experts


def _mean_return(env, policy, seeds: list[int], policy_seed: int = 0) -> float:
    policy.seed(policy_seed)
    return float(np.mean([ep.ret for ep in run_episodes(env, policy, seeds, record=False)]))


@needs_mpe2
@pytest.mark.parametrize(("case", "episodes", "margin"), [
    ("spread", 20, 30.0), ("spread-cont", 20, 30.0), ("tag", 20, 30.0), ("tag-cont", 20, 30.0),
    ("world", 8, 30.0), ("world-cont", 8, 30.0),
])
def test_scripted_expert_beats_random(case, episodes, margin):
    env = _make(case, num_envs=4)
    expert = registry_scripted_policy(env)
    seeds = list(range(100, 100 + episodes))
    random = _mean_return(env, RandomPolicy(env.spec), seeds)
    scripted = _mean_return(env, expert, seeds)
    assert scripted > random + margin, (scripted, random)
    ts = env.reset(seeds[:4])
    actions = expert.act(ts)  # legal and within bounds
    if env.spec.discrete:
        assert actions.dtype == np.int64 and actions.shape == (4, env.spec.n_agents)
        assert np.take_along_axis(ts.avail_actions, actions[..., None], -1).all()
    else:
        assert actions.dtype == np.float32 and actions.shape == (4, env.spec.n_agents, env.spec.action_dim)
        assert (actions >= 0).all() and (actions <= 1).all()


@needs_mpe2
@pytest.mark.parametrize("case", ["spread", "spread-cont"])
def test_epsilon_expert_lies_between_random_and_expert(case):
    env = _make(case, num_envs=4)
    seeds = list(range(200, 220))
    random = _mean_return(env, RandomPolicy(env.spec), seeds)
    noisy = _mean_return(env, EpsilonPolicy(registry_scripted_policy(env), env.spec, epsilon=0.5), seeds)
    scripted = _mean_return(env, registry_scripted_policy(env), seeds)
    assert random + 10 < noisy < scripted - 5, (random, noisy, scripted)


@needs_mpe2
@pytest.mark.parametrize("case", ["spread", "spread-cont"])
def test_spread_expert_comes_to_rest_on_distinct_landmarks(case):
    env = _make(case, num_envs=4)
    finals = [ep.final_observation for ep in run_episodes(env, registry_scripted_policy(env), list(range(8)))]
    for obs in finals:
        rel = obs[:, 4:10].reshape(3, 3, 2)  # [agent, landmark, 2]
        dist = np.linalg.norm(rel, axis=-1)
        assert dist.min(0).max() < 0.2  # every landmark has an agent on it
        if case == "spread-cont":  # exact forces: the agents stop (discrete pushes change speed by 0.5)
            assert np.abs(obs[:, 0:2]).max() < 0.05


@needs_mpe2
def test_scripted_expert_is_deterministic_and_rejects_other_envs():
    env = _make("tag", num_envs=2)
    expert = registry_scripted_policy(env, seed=1)
    a = [ep.actions for ep in run_episodes(env, expert, [1, 2])]
    expert.seed(5)
    b = [ep.actions for ep in run_episodes(env, expert, [1, 2])]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)

    from logo.envs import mpe

    class Other:
        spec = env.spec.__class__(family="smax", scenario="3m", n_agents=3, obs_dim=4, state_dim=4,
                                  action_kind="discrete", n_actions=5, max_steps=10)

    with pytest.raises(LogoError, match="mpe scripted_policy"):
        mpe.scripted_policy(Other())
