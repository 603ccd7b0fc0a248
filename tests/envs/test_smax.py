"""The SMAX adapter against real jaxmarl battles: protocol, seeding, episode ends, vmapped copies, errors and
the scripted expert. 3m by default (batch sizes 1 and 4 only: each new batch size costs a jit compile);
the other maps run with ``-m slow``."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from logo.envs import make_env, smax
from logo.envs import scripted_policy as registry_scripted_policy
from logo.envs.base import MissingExtraError, TimeStep
from logo.envs.episodes import run_episodes
from logo.envs.policies import EpsilonPolicy, RandomPolicy
from logo.errors import LogoError

needs_jaxmarl = pytest.mark.skipif(importlib.util.find_spec("jaxmarl") is None,
                                   reason="needs the 'smax' extra (jaxmarl): pip install 'logo[smax]'")

UNIT_WIDTH = 10  # world_state features per unit: health fraction, x, y, cooldown, 6 unit-type bits


@pytest.fixture(scope="module")
def env4():
    return smax.make("3m", num_envs=4)


@pytest.fixture(scope="module")
def env1():
    return smax.make("3m", num_envs=1)


def unit_health(ts: TimeStep, spec) -> tuple[np.ndarray, np.ndarray]:
    """Health fractions of allies [B, N] and enemies [B, M] read from the global state."""
    units = spec.n_agents + spec.notes["n_enemies"]
    health = ts.state[:, : units * UNIT_WIDTH].reshape(len(ts.state), units, UNIT_WIDTH)[..., 0]
    return health[:, : spec.n_agents], health[:, spec.n_agents:]


def play(env, seeds, actions) -> list[TimeStep]:
    out = [env.reset(seeds)]
    out += [env.step(a) for a in actions]
    return out


def random_rollout(env, seeds, steps: int, seed: int = 0) -> tuple[list[TimeStep], list[np.ndarray]]:
    """Legal random actions chosen online; returns the TimeSteps and the actions taken."""
    policy = RandomPolicy(env.spec, seed=seed)
    steps_out, actions = [env.reset(seeds)], []
    for _ in range(steps):
        actions.append(policy.act(steps_out[-1]))
        steps_out.append(env.step(actions[-1]))
    return steps_out, actions


def assert_same(a: list[TimeStep], b: list[TimeStep]) -> None:
    for x, y in zip(a, b, strict=True):
        for field in ("obs", "state", "reward", "terminated", "truncated", "avail_actions"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
        np.testing.assert_array_equal(x.info["won"], y.info["won"])


@needs_jaxmarl
def test_spec(env4):
    spec = env4.spec
    assert (spec.family, spec.scenario, spec.n_agents, spec.obs_dim, spec.state_dim) == ("smax", "3m", 3, 75, 72)
    assert spec.discrete and spec.n_actions == 8 and spec.action_size == 8  # 4 moves, stop, 3 enemies
    assert spec.max_steps == 100 and spec.has_win
    assert spec.agent_names == ("ally_0", "ally_1", "ally_2")
    assert spec.obs_mask.shape == (3, 75) and spec.obs_mask.all()
    assert "shared" in spec.notes["team_reward"] and spec.notes["n_enemies"] == 3
    assert env4.num_envs == 4
    assert smax.SCENARIOS == ("3m", "2s3z", "5m_vs_6m", "3s_vs_5z", "6h_vs_8z")


@needs_jaxmarl
def test_registry(env4):
    env = make_env("smax", "3m", num_envs=4)  # shares env4's compiled functions
    assert env.spec == env4.spec
    ts = env.reset([0, 1, 2, 3])
    actions = registry_scripted_policy(env, seed=0).act(ts)
    assert actions.shape == (4, 3) and actions.dtype == np.int64


@needs_jaxmarl
def test_timestep_shapes_and_dtypes(env4):
    steps, _ = random_rollout(env4, [0, 1, 2, 3], steps=3)
    for ts in steps:
        assert ts.obs.shape == (4, 3, 75) and ts.obs.dtype == np.float32
        assert ts.state.shape == (4, 72) and ts.state.dtype == np.float32
        assert ts.reward.shape == (4,) and ts.reward.dtype == np.float32
        for flag in (ts.terminated, ts.truncated, ts.info["won"]):
            assert flag.shape == (4,) and flag.dtype == bool
        assert ts.avail_actions.shape == (4, 3, 8) and ts.avail_actions.dtype == bool
        assert np.isfinite(ts.obs).all() and np.isfinite(ts.state).all()
        assert ts.avail_actions[..., smax.STOP].all()  # stop is always legal
        for arr in (ts.obs, ts.state, ts.reward, ts.terminated, ts.truncated, ts.avail_actions, ts.info["won"]):
            assert arr.flags.writeable  # the caller's own arrays, not read-only views of device memory
    first = steps[0]
    assert (first.reward == 0).all() and not first.done.any() and not first.info["won"].any()
    assert not first.avail_actions[..., smax.N_MOVES:].any()  # the armies start out of range
    assert first.avail_actions[..., : smax.N_MOVES].all()


@needs_jaxmarl
def test_episodes_are_valid_datasets(env4, tmp_path):
    """Random episodes take only legal actions and write a dataset that logo's validator accepts."""
    from logo.data.schema import DatasetSpec
    from logo.data.validate import validate_dataset
    from logo.data.writer import DatasetWriter

    episodes = list(run_episodes(env4, RandomPolicy(env4.spec, seed=3), list(range(6))))
    assert [e.seed for e in episodes] == list(range(6))
    for e in episodes:
        taken = np.take_along_axis(e.avail_actions, e.actions[..., None], -1)
        assert taken.all()
        assert e.terminated and 0 < e.length <= 100  # random allies lose long before the time limit
        assert e.won is False
    path = tmp_path / "smax_random.zarr"
    with DatasetWriter(path, spec=DatasetSpec.from_env(env4.spec, quality="random", behaviour="random")) as writer:
        for e in episodes:
            writer.add_episode(**e.writer_kwargs())
    assert validate_dataset(path) == []


@needs_jaxmarl
def test_same_seed_same_actions_same_episode(env4):
    first, actions = random_rollout(env4, [5, 6, 7, 8], steps=12, seed=1)
    again = play(env4, [5, 6, 7, 8], actions)
    assert_same(first, again)
    other = env4.reset([9, 10, 11, 12])
    assert not np.array_equal(other.state, first[0].state)
    assert not np.array_equal(other.obs, first[0].obs)
    # the key is per copy: copy 1 reset with 5 starts where copy 0 reset with 5 did
    swapped = env4.reset([6, 5, 8, 7])
    np.testing.assert_array_equal(swapped.state[[1, 0, 3, 2]], first[0].state)


@needs_jaxmarl
def test_copies_equal_single_copy_runs(env4, env1):
    """The vmapped batch plays exactly the episodes that one copy plays with the same seeds and actions."""
    seeds = [21, 22, 23, 24]
    batch, actions = random_rollout(env4, seeds, steps=25, seed=2)
    for b, seed in enumerate(seeds):
        single = play(env1, [seed], [a[b: b + 1] for a in actions])
        for x, y in zip(batch, single, strict=True):
            np.testing.assert_array_equal(x.obs[b], y.obs[0])
            np.testing.assert_array_equal(x.state[b], y.state[0])
            np.testing.assert_array_equal(x.avail_actions[b], y.avail_actions[0])
            assert (x.reward[b], x.terminated[b], x.truncated[b]) == (y.reward[0], y.terminated[0], y.truncated[0])


@needs_jaxmarl
def test_time_limit_truncates_and_finished_copies_freeze():
    env = smax.make("3m", num_envs=4, max_steps=3)  # the limit is a runtime argument: no new compile
    assert env.spec.max_steps == 3
    ts = env.reset([0, 1, 2, 3])
    stop = np.full((4, 3), smax.STOP)
    for t in range(3):
        ts = env.step(stop)
        assert ts.truncated.all() == (t == 2) and not ts.terminated.any()
    final = ts
    assert not final.info["won"].any()
    # finished copies ignore actions (even ones that were illegal) and repeat their last step with reward 0
    moves = np.full((4, 3), 1)
    for actions in (moves, stop):
        ts = env.step(actions)
        np.testing.assert_array_equal(ts.obs, final.obs)
        np.testing.assert_array_equal(ts.state, final.state)
        np.testing.assert_array_equal(ts.avail_actions, final.avail_actions)
        assert (ts.reward == 0).all() and ts.truncated.all() and not ts.terminated.any()


@needs_jaxmarl
def test_finished_copy_freezes_while_others_run(env4):
    """Copies end at different steps; each stays frozen at its own final step while the rest go on."""
    policy = RandomPolicy(env4.spec, seed=4)
    ts = env4.reset([30, 31, 32, 33])
    finals: dict[int, TimeStep] = {}
    ended_at: dict[int, int] = {}
    for t in range(100):
        ts = env4.step(policy.act(ts))
        for b in np.flatnonzero(ts.done):
            if b in finals:
                final = finals[b]
                np.testing.assert_array_equal(ts.obs[b], final.obs[b])
                np.testing.assert_array_equal(ts.state[b], final.state[b])
                np.testing.assert_array_equal(ts.avail_actions[b], final.avail_actions[b])
                assert ts.reward[b] == 0 and ts.terminated[b] == final.terminated[b]
            else:
                finals[b], ended_at[b] = ts, t
        if ts.done.all():
            break
    assert ts.done.all() and ts.terminated.all()
    assert len(set(ended_at.values())) > 1  # the copies did not all end on the same step


@needs_jaxmarl
def test_terminated_episodes_and_won_flag(env4):
    """Scripted 3m battles end by termination; won iff every enemy is dead while an ally lives, and the win
    bonus of the shared reward is paid exactly then."""
    policy = smax.scripted_policy(env4)
    ts = env4.reset([40, 41, 42, 43])
    wins = 0
    while not ts.done.all():
        ts_next = env4.step(policy.act(ts))
        ended = ts_next.done & ~ts.done
        allies, enemies = unit_health(ts_next, env4.spec)
        for b in np.flatnonzero(ended):
            assert ts_next.terminated[b] and not ts_next.truncated[b]
            won = bool(ts_next.info["won"][b])
            assert won == ((enemies[b] == 0).all() and (allies[b] > 0).any())
            if won:
                assert ts_next.reward[b] >= 1.0  # the win bonus
            wins += won
        assert not ts_next.info["won"][~ts_next.done].any()
        ts = ts_next
    assert wins >= 1


@needs_jaxmarl
def test_team_reward_is_the_enemies_health_loss(env4):
    """Without a win, the shared reward is the enemies' summed health loss fraction over the enemy count."""
    policy = smax.scripted_policy(env4)
    ts = env4.reset([50, 51, 52, 53])
    total = np.zeros(4)
    while not ts.done.all():
        nxt = env4.step(policy.act(ts))
        _, before = unit_health(ts, env4.spec)
        _, after = unit_health(nxt, env4.spec)
        live = ~ts.done & ~nxt.info["won"]
        expected = (before - after).sum(-1) / 3
        np.testing.assert_allclose(nxt.reward[live], expected[live], atol=1e-5)
        total += nxt.reward
        ts = nxt
    _, enemies = unit_health(ts, env4.spec)
    np.testing.assert_allclose(total, (1 - enemies.mean(-1)) + ts.info["won"], atol=1e-4)


@needs_jaxmarl
def test_invalid_actions_are_refused(env4):
    ts = env4.reset([0, 1, 2, 3])
    with pytest.raises(ValueError, match="expected shape"):
        env4.step(np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match=r"indices in \[0, 8\)"):
        env4.step(np.full((4, 3), 8))
    with pytest.raises(ValueError, match="integer"):
        env4.step(np.zeros((4, 3), np.float32))
    attack = np.full((4, 3), smax.STOP)
    attack[2, 1] = smax.N_MOVES  # attack enemy 0, out of range at the start
    with pytest.raises(ValueError, match="agent 1 of copy 2 took action 5, which avail_actions marks illegal"):
        env4.step(attack)
    after = env4.step(np.full((4, 3), smax.STOP))  # the refused steps changed nothing
    fresh = play(env4, [0, 1, 2, 3], [np.full((4, 3), smax.STOP)])
    assert_same([ts, after], fresh)
    with pytest.raises(ValueError, match="expected 4 seeds"):
        env4.reset([0, 1])


@needs_jaxmarl
def test_step_before_reset():
    env = smax.make("3m", num_envs=1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.full((1, 3), smax.STOP))


@needs_jaxmarl
def test_bad_scenario_and_options():
    with pytest.raises(LogoError, match="smax scenario: expected a jaxmarl SMAX map such as 3m"):
        smax.make("4m")
    with pytest.raises(LogoError, match=r"unknown \['episode_limit'\]; expected some of \['max_steps'\]"):
        smax.make("3m", episode_limit=10)
    with pytest.raises(LogoError, match="max_steps: expected a positive integer"):
        smax.make("3m", max_steps=0)
    with pytest.raises(LogoError, match="num_envs"):
        smax.make("3m", num_envs=0)


def test_missing_jaxmarl_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jaxmarl", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'logo\[smax\]'"):
        smax.make("3m")


def evaluate(env, policy, seeds) -> tuple[float, float]:
    episodes = list(run_episodes(env, policy, seeds, record=False))
    return float(np.mean([e.ret for e in episodes])), float(np.mean([e.won for e in episodes]))


@needs_jaxmarl
def test_scripted_expert_beats_random_and_noise_falls_between(env4):
    seeds = list(range(100, 116))
    expert = evaluate(env4, smax.scripted_policy(env4), seeds)
    noisy = evaluate(env4, EpsilonPolicy(smax.scripted_policy(env4), env4.spec, epsilon=0.3, seed=0), seeds)
    rand = evaluate(env4, RandomPolicy(env4.spec, seed=0), seeds)
    assert rand[1] == 0.0 and rand[0] < 0.4
    assert expert[1] >= 0.6 and expert[0] > rand[0] + 1.0
    assert rand[0] < noisy[0] < expert[0]


@needs_jaxmarl
def test_scripted_expert_takes_legal_actions_and_is_deterministic(env4):
    policy = smax.scripted_policy(env4, seed=0)
    first = list(run_episodes(env4, policy, [60, 61, 62, 63]))
    policy.seed(123)
    again = list(run_episodes(env4, policy, [60, 61, 62, 63]))
    for a, b in zip(first, again, strict=True):
        assert np.take_along_axis(a.avail_actions, a.actions[..., None], -1).all()
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)


# ---- other maps (slow: one jit compile each) ----

SPECS = {  # n_agents, n_enemies, obs_dim, state_dim, n_actions
    "2s3z": (5, 5, 13 * 9 + 10, 12 * 10, 10),
    "5m_vs_6m": (5, 6, 13 * 10 + 10, 12 * 11, 11),
    "3s_vs_5z": (3, 5, 13 * 7 + 10, 12 * 8, 10),
    "6h_vs_8z": (6, 8, 13 * 13 + 10, 12 * 14, 13),
}


@needs_jaxmarl
@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SPECS))
def test_other_maps(scenario):
    env = smax.make(scenario, num_envs=8)
    n, m, obs_dim, state_dim, n_actions = SPECS[scenario]
    spec = env.spec
    assert (spec.n_agents, spec.notes["n_enemies"], spec.obs_dim, spec.state_dim, spec.n_actions) == (
        n, m, obs_dim, state_dim, n_actions)
    seeds = list(range(200, 232))
    episodes = list(run_episodes(env, smax.scripted_policy(env), seeds))
    for e in episodes:
        assert e.observations.shape == (e.length, n, obs_dim) and e.state.shape == (e.length, state_dim)
        assert np.take_along_axis(e.avail_actions, e.actions[..., None], -1).all()
    expert = (np.mean([e.ret for e in episodes]), np.mean([e.won for e in episodes]))
    rand = evaluate(env, RandomPolicy(spec, seed=0), seeds)
    assert rand[1] == 0.0
    assert expert[0] > rand[0] + 0.3
    if scenario != "5m_vs_6m":  # 5m_vs_6m is a hard map: the expert rarely wins but far out-damages random
        assert expert[1] >= 0.7
