"""Shared fixtures: small real datasets written by logo's own writer into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from logo.data.pointmass import generate_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def discrete_dataset(tmp_path_factory) -> Path:
    """60 episodes of the synthetic point-mass task with discrete actions (read-only: do not modify)."""
    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "discrete.zarr", episodes=60, seed=1)


@pytest.fixture(scope="session")
def continuous_dataset(tmp_path_factory) -> Path:
    """60 episodes of the synthetic point-mass task with continuous actions (read-only: do not modify)."""
    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "continuous.zarr", episodes=60, seed=2,
                                      action_kind="continuous")


def collect_small(family: str, scenario: str, package: str, options: dict, tmp_path_factory) -> Path:
    """A small medium-tier dataset collected by ``logo collect`` in the real environment (skips without the extra)."""
    pytest.importorskip(package, reason=f"needs the '{family}' extra")
    from logo.collect import collect

    out = tmp_path_factory.mktemp(family) / "data.zarr"
    collect(env=family, scenario=scenario, quality="medium", out=str(out), seed=0, progress=False, **options)
    return out


@pytest.fixture(scope="session")
def mpe_dataset(tmp_path_factory) -> Path:
    """16 episodes of MPE simple_spread collected by ``logo collect`` (read-only: do not modify)."""
    options = {"behaviour": "scripted", "epsilon": 0.5, "episodes": 16, "num_envs": 4}
    return collect_small("mpe", "simple_spread_v3", "mpe2", options, tmp_path_factory)
