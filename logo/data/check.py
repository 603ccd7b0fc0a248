"""``logo data check``: can a dataset be trained on and evaluated in a given environment?

Imported datasets are the usual source of shape mismatches (a SMAC dataset fed to SMAX, an
old MPE version with other observation sizes). This compares a dataset's dims, action kind,
action count and bounds with what an environment adapter gives and names every difference,
instead of letting the first matrix multiplication fail.
"""

from __future__ import annotations

from typing import Any

from logo.data.schema import DatasetSpec
from logo.envs.base import EnvSpec

FAMILY_NAMES = {"mpe": "MPE", "mamujoco": "MaMuJoCo", "smax": "SMAX", "smac": "SMAC"}


def compatibility_problems(data: DatasetSpec, env: EnvSpec) -> list[str]:
    """One sentence per way ``data`` does not fit ``env``; empty when they match."""
    where = f"{FAMILY_NAMES.get(env.family, env.family)} {env.scenario}"
    problems = []
    if data.n_agents != env.n_agents:
        problems.append(f"agents: dataset {data.n_agents}, {where} has {env.n_agents}")
    if data.obs_dim != env.obs_dim:
        problems.append(f"observations: dataset {data.obs_dim} per agent, {where} gives {env.obs_dim}")
    if data.state_dim != env.state_dim:
        problems.append(f"state: dataset {data.state_dim}, {where} gives {env.state_dim}")
    if data.action_kind != env.action_kind:
        problems.append(f"actions: dataset {data.action_kind}, {where} takes {env.action_kind}")
    elif data.action_kind == "discrete" and data.n_actions != env.n_actions:
        problems.append(f"actions: dataset {data.n_actions} per agent, {where} has {env.n_actions}")
    elif data.action_kind == "continuous":
        if data.action_dim != env.action_dim:
            problems.append(f"actions: dataset dimension {data.action_dim} per agent, {where} takes {env.action_dim}")
        elif list(data.action_low) != list(env.action_low) or list(data.action_high) != list(env.action_high):
            problems.append(f"action bounds: dataset [{data.action_low}, {data.action_high}], {where} "
                            f"[{list(env.action_low)}, {list(env.action_high)}]")
    if problems and data.env_family != env.family:
        recorded = FAMILY_NAMES.get(data.env_family, data.env_family)
        problems.append(f"this dataset was recorded on {recorded} ({data.scenario}) and cannot be evaluated in "
                        f"{where}")
    return problems


def check_dataset(path: str, env: str | None = None, scenario: str | None = None,
                  env_options: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """Compare the dataset at ``path`` with an environment (default: the one it names); returns
    (the environment's name, the problems)."""
    from logo.data.validate import open_dataset
    from logo.envs import make_env

    _, spec = open_dataset(path)
    family, name = env or spec.env_family, scenario or spec.scenario
    options = env_options if env_options is not None else dict(spec.extra.get("env_options") or {})
    environment = make_env(family, name, num_envs=1, **options)
    try:
        return f"{family}/{name}", compatibility_problems(spec, environment.spec)
    finally:
        environment.close()
