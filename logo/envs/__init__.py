"""Environment adapters behind one protocol (``logo.envs.base``), looked up by family name.

Each family lives in its own module, which imports its optional dependency only when an
environment is made, so ``import logo.envs`` works with none of them installed. A family
module provides ``SCENARIOS`` (the names it is tested on), ``make(scenario, num_envs, **options)``
and, where a good simple expert exists, ``scripted_policy(env, seed)``.

Example:
    >>> env = make_env("mpe", "simple_spread_v3", num_envs=4)  # doctest: +SKIP
    >>> ts = env.reset(seeds=[0, 1, 2, 3])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from logo.envs.base import EnvSpec, MissingExtraError, MultiAgentEnv, Policy, TimeStep
from logo.errors import LogoError

FAMILIES = {
    "mpe": "logo.envs.mpe",
    "mamujoco": "logo.envs.mamujoco",
    "smax": "logo.envs.smax",
    "smac": "logo.envs.smac",
}

__all__ = ["FAMILIES", "EnvSpec", "MissingExtraError", "MultiAgentEnv", "Policy", "TimeStep", "family_module",
           "make_env", "scripted_policy"]


def family_module(family: str) -> ModuleType:
    """The adapter module of ``family``; a LogoError lists the known families otherwise."""
    if family not in FAMILIES:
        raise LogoError(f"env family: expected one of {sorted(FAMILIES)}, got {family!r}")
    return importlib.import_module(FAMILIES[family])


def make_env(family: str, scenario: str, num_envs: int = 1, **options: Any) -> MultiAgentEnv:
    """Make ``num_envs`` copies of ``scenario`` from ``family`` (options go to the family's ``make``)."""
    if num_envs < 1:
        raise LogoError(f"num_envs: expected at least 1, got {num_envs}")
    return family_module(family).make(scenario, num_envs=num_envs, **options)


def scripted_policy(env: MultiAgentEnv, seed: int = 0, **options: Any) -> Policy:
    """The family's scripted expert for ``env``; a LogoError where the family has none."""
    module = family_module(env.spec.family)
    factory = getattr(module, "scripted_policy", None)
    if factory is None:
        raise LogoError(f"no scripted expert for {env.spec.family} environments; use --behaviour checkpoint "
                        "with a trained policy (see docs/environments.md)")
    return factory(env, seed=seed, **options)
