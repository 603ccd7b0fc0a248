"""Environment-agnostic policies: uniform random, epsilon-noisy wrappers, and a live logo policy module acting.

torch is imported only by ``ModulePolicy``'s methods, so collecting with the other policies never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from logo.dims import ACTING_DIMS, linked_dims
from logo.envs.base import EnvSpec, Policy, TimeStep
from logo.errors import LogoError, check_fits

if TYPE_CHECKING:
    from torch import nn


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
        epsilon: per-agent, per-step probability of a random action, in [0, 1]; one value for all copies
            or one per env copy (``[B]``, e.g. an annealing schedule across a batch of episodes).
        seed: seed of the noise.
    """

    def __init__(self, base: Policy, spec: EnvSpec, epsilon: float | np.ndarray, seed: int = 0):
        self.base, self.spec = base, spec
        self.epsilon = epsilon
        self.seed(seed)

    @property
    def epsilon(self) -> float | np.ndarray:
        return self._epsilon

    @epsilon.setter
    def epsilon(self, value: float | np.ndarray) -> None:
        value = np.asarray(value, np.float64)
        if value.ndim > 1 or not np.all((value >= 0.0) & (value <= 1.0)):
            raise ValueError(f"epsilon: expected probabilities in [0, 1] (a scalar or one per copy), got {value}")
        self._epsilon = float(value) if value.ndim == 0 else value

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 1])
        self.base.seed(seed)

    def act(self, ts: TimeStep) -> np.ndarray:
        actions = self.base.act(ts)
        eps = self._epsilon
        if np.all(eps == 0.0):
            return actions
        noisy = random_actions(self.spec, ts, self.rng)
        swap = self.rng.random(actions.shape[:2]) < (eps if np.ndim(eps) == 0 else eps[:, None])  # [B, N]
        if not self.spec.discrete:
            swap = swap[..., None]
        return np.where(swap, noisy, actions)


class ModulePolicy:
    """A live logo policy module acting greedily in a ``logo.envs`` environment.

    Args:
        module: a module with ``act(obs, avail_actions=None, state=None)`` on torch tensors (see
            ``logo.policy.checkpoint.ActingPolicy``), e.g. one being trained or one loaded from a checkpoint.
        spec: the environment's spec; the module's dims must match it.
    """

    def __init__(self, module: nn.Module, spec: EnvSpec):
        if not callable(getattr(module, "act", None)):
            raise LogoError(f"{type(module).__name__} is not a policy (it has no act()); pass the checkpoint of a "
                            "policy (BCPolicy, DiscreteMACQL, ContinuousMACQL, OnlineTD3)")
        check_fits(getattr(module, "hparams", {}), linked_dims(spec, ACTING_DIMS), f"policy {type(module).__name__}",
                   f"{spec.family}/{spec.scenario}", ("checkpoint", "environment"),
                   hint="evaluate it in the environment of the dataset it was trained on (`logo data check` "
                        "compares a dataset with an environment)")
        self.module, self.spec = module, spec

    def seed(self, seed: int) -> None:
        """Greedy policies have no randomness."""

    def act(self, ts: TimeStep) -> np.ndarray:
        return module_actions(self.module, self.spec, ts,
                              lambda obs, avail, state: self.module.act(obs, avail_actions=avail, state=state))


def module_actions(module: nn.Module, spec: EnvSpec, ts: TimeStep, act: Callable) -> np.ndarray:
    """``act(obs, avail, state)`` of a module on a time step: its arrays as tensors on the module's device
    (``avail`` None where the env has no masks), no gradients, and the actions back as the env's numpy dtype."""
    import torch

    device = module.device
    obs = torch.as_tensor(ts.obs, device=device)
    avail = None if ts.avail_actions is None else torch.as_tensor(ts.avail_actions, device=device)
    state = torch.as_tensor(ts.state, device=device)
    with torch.no_grad():
        actions = act(obs, avail, state)
    return actions.cpu().numpy().astype(np.int64 if spec.discrete else np.float32)
