"""Environment-agnostic policies: random legal actions, epsilon-noisy wrappers and a live module acting."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from logo.envs.base import EnvSpec, TimeStep
from logo.envs.policies import EpsilonPolicy, ModulePolicy, RandomPolicy
from logo.errors import LogoError

DISCRETE = EnvSpec(family="test", scenario="s", n_agents=3, obs_dim=2, state_dim=4, action_kind="discrete",
                   n_actions=5, max_steps=10)
CONTINUOUS = EnvSpec(family="test", scenario="s", n_agents=2, obs_dim=2, state_dim=4, action_kind="continuous",
                     action_dim=2, action_low=(-1.0, 0.0), action_high=(1.0, 3.0), max_steps=10)


def timestep(spec, batch, avail=None):
    zeros = np.zeros(batch, bool)
    return TimeStep(obs=np.zeros((batch, spec.n_agents, spec.obs_dim), np.float32),
                    state=np.zeros((batch, spec.state_dim), np.float32), reward=np.zeros(batch, np.float32),
                    terminated=zeros, truncated=zeros, avail_actions=avail)


class Constant:
    def __init__(self, value):
        self.value = value

    def seed(self, seed):
        pass

    def act(self, ts):
        return np.broadcast_to(self.value, (ts.obs.shape[0], *np.shape(self.value)[1:])).copy()


def test_random_discrete_picks_only_legal_actions_uniformly():
    avail = np.zeros((4000, 3, 5), bool)
    avail[:, 0, [1, 3]] = True
    avail[:, 1, 4] = True
    avail[:, 2, :] = True
    actions = RandomPolicy(DISCRETE, seed=0).act(timestep(DISCRETE, 4000, avail))
    assert actions.dtype == np.int64 and actions.shape == (4000, 3)
    assert set(np.unique(actions[:, 0])) == {1, 3} and (actions[:, 1] == 4).all()
    counts = np.bincount(actions[:, 2], minlength=5) / 4000
    np.testing.assert_allclose(counts, 0.2, atol=0.03)


def test_random_continuous_stays_in_bounds_and_reseeds():
    policy = RandomPolicy(CONTINUOUS, seed=3)
    a = policy.act(timestep(CONTINUOUS, 500))
    assert a.dtype == np.float32 and a.shape == (500, 2, 2)
    assert (a[..., 0] >= -1).all() and (a[..., 0] <= 1).all() and (a[..., 1] >= 0).all() and (a[..., 1] <= 3).all()
    policy.seed(3)
    np.testing.assert_array_equal(policy.act(timestep(CONTINUOUS, 500)), a)


def test_epsilon_zero_is_the_base_policy_and_one_is_random():
    base = Constant(np.full((1, 3), 2, np.int64))
    ts = timestep(DISCRETE, 2000, np.ones((2000, 3, 5), bool))
    assert (EpsilonPolicy(base, DISCRETE, 0.0).act(ts) == 2).all()
    noisy = EpsilonPolicy(base, DISCRETE, 1.0, seed=1).act(ts)
    assert abs((noisy == 2).mean() - 0.2) < 0.03  # uniform over 5 actions, one of which is 2
    half = EpsilonPolicy(base, DISCRETE, 0.5, seed=1).act(ts)
    assert abs((half != 2).mean() - 0.5 * 0.8) < 0.03


def test_per_copy_epsilon_and_continuous_noise():
    base = Constant(np.full((1, 2, 2), 0.5, np.float32))
    policy = EpsilonPolicy(base, CONTINUOUS, np.array([0.0, 1.0]), seed=0)
    out = np.stack([policy.act(timestep(CONTINUOUS, 2)) for _ in range(50)])  # [50, B, N, A]
    assert (out[:, 0] == 0.5).all(), "copy 0 has epsilon 0"
    assert (out[:, 1] != 0.5).all(), "copy 1 has epsilon 1: every action random"
    with pytest.raises(ValueError, match="epsilon: expected probabilities"):
        EpsilonPolicy(base, CONTINUOUS, 1.5)
    with pytest.raises(ValueError, match="epsilon: expected probabilities"):
        policy.epsilon = np.array([[0.1]])


def test_importing_the_policies_does_not_import_torch():
    code = "import logo.envs.policies, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_module_policy_checks_the_module_and_acts_with_the_env_dtype():
    import torch

    class Greedy(torch.nn.Module):
        hparams = {"n_agents": 2, "obs_dim": 2}
        device = torch.device("cpu")

        def act(self, obs, avail_actions=None, state=None):
            return obs.double()  # [B, N, 2]: float64 on purpose

    with pytest.raises(LogoError, match="not a policy"):
        ModulePolicy(torch.nn.Linear(2, 2), CONTINUOUS)
    wrong = Greedy()
    wrong.hparams = {"n_agents": 3}
    with pytest.raises(LogoError, match="n_agents: checkpoint 3, environment 2"):
        ModulePolicy(wrong, CONTINUOUS)
    actions = ModulePolicy(Greedy(), CONTINUOUS).act(timestep(CONTINUOUS, 4))
    assert actions.shape == (4, 2, 2) and actions.dtype == np.float32
