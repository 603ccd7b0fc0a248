"""evaluate_policy's value probe: q_policy / rtg_policy against the same episodes worked out by hand (SMAX 3m,
whose episodes end at different steps, so the batch bookkeeping is exercised)."""

from __future__ import annotations

import numpy as np
import pytest

from logo.envs import make_env
from logo.envs.episodes import discounted_rtg, run_episodes
from logo.envs.evaluate import evaluate_policy
from logo.envs.policies import RandomPolicy


def test_discounted_rtg_by_hand():
    np.testing.assert_allclose(discounted_rtg(np.array([1.0, 0.0, 2.0]), 0.5), [1.5, 1.0, 2.0])
    assert discounted_rtg(np.zeros(0), 0.9).shape == (0,)


def test_q_policy_and_rtg_policy_match_the_episodes_by_hand():
    env = make_env("smax", "3m", num_envs=3)
    seen = []  # the probe's value: each step's index within its batch of episodes, per copy

    def value(ts, actions):
        assert actions.shape == ts.obs.shape[:2]  # the joint action the policy took at ts
        seen.append(len(seen))
        return np.full(len(ts.obs), float(len(seen) - 1))

    result = evaluate_policy(env, RandomPolicy(env.spec), episodes=5, seed=3, value=value, gamma=0.9,
                             reward_scale=2.0)
    policy = RandomPolicy(env.spec)
    policy.seed(3)
    episodes = list(run_episodes(make_env("smax", "3m", num_envs=3), policy, list(range(3, 8))))
    np.testing.assert_allclose(result.returns, [e.ret for e in episodes])
    assert len({e.length for e in episodes}) > 1, "episodes of different lengths test the batch bookkeeping"
    # steps of batch 1 are numbered 0.. (its longest episode), those of batch 2 continue from there
    first = max(e.length for e in episodes[:3])
    q = sum(sum(range(e.length)) for e in episodes[:3]) + sum(sum(range(first, first + e.length))
                                                              for e in episodes[3:])
    rtg = sum(discounted_rtg(2.0 * e.rewards.astype(np.float64), 0.9).sum() for e in episodes)
    steps = sum(e.length for e in episodes)
    assert result.extra["q_policy"] == pytest.approx(q / steps)
    assert result.extra["rtg_policy"] == pytest.approx(rtg / steps)
    assert {"q_policy", "rtg_policy"} <= set(result.metrics())
    assert "q_policy" not in evaluate_policy(env, RandomPolicy(env.spec), episodes=2, seed=3).extra
