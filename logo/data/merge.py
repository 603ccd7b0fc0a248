"""Combine datasets of one scenario into one, e.g. the ``mixed`` tier (medium + expert, as CFCQL builds it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from logo.data.reader import OfflineDataset
from logo.data.writer import DatasetWriter
from logo.errors import LogoError

# DatasetSpec fields that may differ between merged datasets (everything else must match)
FREE_FIELDS = ("quality", "behaviour", "source", "extra")


def merge_datasets(paths: list[str], out: str, quality: str, overwrite: bool = False,
                   extra_attrs: dict[str, Any] | None = None) -> Path:
    """Write every episode of ``paths`` (in order) to ``out``, labelled ``quality``; returns the path.

    The inputs must describe the same scenario (same family, scenario, sizes, action space and
    observation mask). The result records where each part came from in ``merged_from``, plus any
    ``extra_attrs`` (e.g. the learned tiers' ``provenance``).
    """
    if len(paths) < 2:
        raise LogoError(f"merge: expected at least two datasets, got {len(paths)}")
    if Path(out).exists() and not overwrite:
        raise LogoError(f"out: {out} already exists; pass --overwrite to replace it")
    datasets = [OfflineDataset.load(p) for p in paths]
    first = datasets[0]
    for path, data in zip(paths[1:], datasets[1:]):
        diff = [f"{name}: {getattr(first.spec, name)!r} vs {getattr(data.spec, name)!r}"
                for name in first.spec.__dataclass_fields__ if name not in FREE_FIELDS
                and getattr(first.spec, name) != getattr(data.spec, name)]
        if not np.array_equal(first.arrays["obs_mask"], data.arrays["obs_mask"]):
            diff.append("obs_mask differs")
        if diff:
            raise LogoError(f"merge: {path} does not match {paths[0]} ({'; '.join(diff)})")
    parts = [{"path": str(p), "quality": d.spec.quality, "episodes": d.n_episodes,
              "transitions": d.n_transitions, "return_mean": float(d.episode_returns().mean())}
             for p, d in zip(paths, datasets)]
    behaviour = "merge of " + " + ".join(f"{p['quality']} ({p['episodes']} episodes)" for p in parts)
    # keep what evaluation needs (env options, reference returns) where every part agrees on it
    kept = {k: v for k, v in first.spec.extra.items() if all(d.spec.extra.get(k) == v for d in datasets)}
    spec = replace(first.spec, quality=quality, behaviour=behaviour, source="logo data merge", extra=kept)
    extra: dict[str, Any] = {"merged_from": parts, **(extra_attrs or {})}
    with DatasetWriter(out, spec, overwrite=overwrite) as writer:
        writer.set_obs_mask(first.arrays["obs_mask"])
        for data in datasets:
            _copy_episodes(data, writer)
        return writer.close(extra_attrs=extra)


def _copy_episodes(data: OfflineDataset, writer: DatasetWriter) -> None:
    a, bounds, discrete = data.arrays, data.episode_bounds(), data.spec.discrete
    for e in range(data.n_episodes):
        s = slice(bounds[e], bounds[e + 1])
        writer.add_episode(
            observations=a["observations"][s], state=a["state"][s], actions=a["actions"][s],
            rewards=a["rewards"][s], final_observation=a["final_observations"][e],
            final_state=a["final_state"][e], terminated=bool(a["terminals"][bounds[e + 1] - 1]),
            avail_actions=a["avail_actions"][s] if discrete else None,
            final_avail_actions=a["final_avail_actions"][e] if discrete else None,
            agent_rewards=a["agent_rewards"][s] if "agent_rewards" in a else None)
