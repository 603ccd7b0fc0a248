"""Environment-agnostic behaviour policies: uniform random and epsilon-noisy wrappers."""

from __future__ import annotations

import numpy as np

from logo.envs.base import EnvSpec, Policy, TimeStep


def random_actions(spec: EnvSpec, ts: TimeStep, rng: np.random.Generator) -> np.ndarray:
    """Uniform random joint actions: legal ones only (discrete) or uniform within the bounds (continuous)."""
    batch = ts.obs.shape[0]
    if spec.discrete:
        avail = ts.avail_actions if ts.avail_actions is not None else np.ones((batch, spec.n_agents,
                                                                                spec.n_actions), bool)
        # pick uniformly among legal actions: argmax of random scores on legal entries
        scores = rng.random(avail.shape) + avail  # legal entries score in [1, 2), illegal in [0, 1)
        return scores.argmax(-1).astype(np.int64)
    low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    return rng.uniform(low, high, size=(batch, spec.n_agents, spec.action_dim)).astype(np.float32)


class RandomPolicy:
    """Uniform random behaviour over legal actions (the ``random`` tier)."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        self.spec = spec
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, ts: TimeStep) -> np.ndarray:
        return random_actions(self.spec, ts, self.rng)


class EpsilonPolicy:
    """Follows ``base`` but each agent independently takes a uniform random (legal) action with probability
    ``epsilon`` at every step: the usual way to degrade an expert to a medium behaviour policy.

    Args:
        base: the policy to degrade.
        spec: the environment's spec (action space and bounds).
        epsilon: per-agent, per-step probability of a random action, in [0, 1].
        seed: seed of the noise.
    """

    def __init__(self, base: Policy, spec: EnvSpec, epsilon: float, seed: int = 0):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon: expected a probability in [0, 1], got {epsilon}")
        self.base, self.spec, self.epsilon = base, spec, float(epsilon)
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 1])
        self.base.seed(seed)

    def act(self, ts: TimeStep) -> np.ndarray:
        actions = self.base.act(ts)
        if self.epsilon == 0.0:
            return actions
        noisy = random_actions(self.spec, ts, self.rng)
        swap = self.rng.random(actions.shape[:2]) < self.epsilon  # [B, N]
        if not self.spec.discrete:
            swap = swap[..., None]
        return np.where(swap, noisy, actions)
