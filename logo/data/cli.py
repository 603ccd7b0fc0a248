"""``logo data ...``: dataset tools (summary, validation, environment check, merge, a synthetic smoke-test dataset)."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from jsonargparse import ArgumentParser

from logo.data.check import check_dataset
from logo.data.importers import FORMATS, import_dataset
from logo.data.merge import merge_datasets
from logo.data.pointmass import generate_synthetic_dataset
from logo.data.reader import OfflineDataset
from logo.data.validate import open_dataset, validate_dataset


def dataset_summary(path: str) -> dict[str, Any]:
    """Sizes, episode statistics and attributes of a dataset, as one JSON-ready dict."""
    data = OfflineDataset.load(path, validate=False)
    returns = data.episode_returns()
    lengths = np.diff(data.episode_bounds())
    spec = data.spec
    disk = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {
        "path": str(path),
        "env_family": spec.env_family,
        "scenario": spec.scenario,
        "quality": spec.quality,
        "behaviour": spec.behaviour,
        "source": spec.source,
        "n_agents": spec.n_agents,
        "obs_dim": spec.obs_dim,
        "state_dim": spec.state_dim,
        "action_kind": spec.action_kind,
        "action_size": spec.action_size,
        "transitions": data.n_transitions,
        "episodes": data.n_episodes,
        "terminated_episodes": int(data.arrays["terminals"].sum()),
        "truncated_episodes": int(data.arrays["truncations"].sum()),
        "episode_length_mean": float(lengths.mean()),
        "episode_length_min": int(lengths.min()),
        "episode_length_max": int(lengths.max()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "bytes_on_disk": disk,
        "bytes_in_memory": int(sum(a.nbytes for a in data.arrays.values())),
        "created_by": data.attrs.get("created_by"),
        "provenance": data.attrs.get("provenance"),  # learned tiers (logo tiers): behaviour run, threshold, ...
    }


def info(path: str, as_json: bool = False) -> int:
    summary = dataset_summary(path)
    if as_json:
        print(json.dumps(summary))
        return 0
    provenance = summary.pop("provenance") or {}
    summary.update({f"provenance.{k}": v for k, v in provenance.items()})
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:<{width}}  {value}")
    return 0


def validate(path: str) -> int:
    problems = validate_dataset(path)
    if problems:
        print(f"{path}: INVALID ({len(problems)} problems)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    group, _ = open_dataset(path)  # metadata only: the arrays were just read and checked
    print(f"{path}: OK ({group['rewards'].shape[0]} transitions, {group['episode_starts'].shape[0]} episodes)")
    return 0


def import_command(sub) -> int:
    module = importlib.import_module(FORMATS[sub.format])
    accepted = inspect.signature(module.read).parameters
    options = {k: v for k, v in sub.items() if k in accepted and k != "src" and v is not None}
    given = {k for k, v in sub.items() if v is not None and k not in ("format", "src", "out", "overwrite",
                                                                      "no_progress") and v is not False}
    ignored = sorted(given - set(accepted))
    if ignored:
        print(f"note: {', '.join('--' + k for k in ignored)} not used by the {sub.format} importer", file=sys.stderr)
    path, source = import_dataset(sub.format, sub.src, sub.out, overwrite=sub.overwrite,
                                  progress=not sub.no_progress, **options)
    for line in source.mapping:
        print(f"  {line}")
    data = OfflineDataset.load(path)
    print(f"wrote {path}: {data.n_transitions} transitions, {data.n_episodes} episodes, validated "
          f"({source.spec.env_family}/{source.spec.scenario}, {source.spec.quality})")
    return 0


def check(path: str, env: str | None, scenario: str | None, env_options: dict | None) -> int:
    target, problems = check_dataset(path, env, scenario, env_options)
    if problems:
        print(f"{path} does not fit {target}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{path}: fits {target}")
    return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="logo data", description="Dataset tools for logo's zarr format.")
    commands = parser.add_subcommands(dest="command")

    p = ArgumentParser(description="Summarise a dataset: sizes, episodes, returns, attributes.")
    p.add_argument("path", type=str, help="dataset folder (.zarr)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    commands.add_subcommand("info", p, help="Summarise a dataset")

    p = ArgumentParser(description="Check a dataset; exit 0 if valid, 1 with every problem listed otherwise.")
    p.add_argument("path", type=str, help="dataset folder (.zarr)")
    commands.add_subcommand("validate", p, help="Validate a dataset")

    p = ArgumentParser(description="Convert a published dataset (og-marl vault, CFCQL HDF5, OMIGA HDF5, OMAR npy) "
                                   "to a validated logo dataset; see docs/importers.md for each mapping.")
    p.add_argument("format", type=str, choices=list(FORMATS), help="source format")
    p.add_argument("src", type=str, help="source: vault <uid> or .vlt folder, .h5/.hdf5 file, or OMAR seed folder")
    p.add_argument("--out", type=str, required=True, help="target dataset folder (.zarr), written atomically")
    p.add_argument("--env", type=str, default=None, help="logo env family (default: from the source)")
    p.add_argument("--scenario", type=str, default=None, help="scenario name (default: from the source)")
    p.add_argument("--quality", type=str, default=None, help="quality label (default: from the source)")
    p.add_argument("--uid", type=str, default=None, help="og-marl: which vault of a .vlt folder")
    p.add_argument("--team_reward", type=str, default=None, choices=["mean", "sum", "agent0"],
                   help="og-marl / OMAR: how per-agent rewards become the team reward")
    p.add_argument("--episode_limit", type=int, default=None,
                   help="og-marl / OMIGA (MaMuJoCo and SMAC): episodes ending at exactly this length "
                        "count as truncated")
    p.add_argument("--episode_length", type=int, default=None, help="OMAR: fixed episode length of MPE data")
    p.add_argument("--agents", type=list[int] | None, default=None, help="OMAR: agent indices to keep, e.g. [0,1,2]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    commands.add_subcommand("import", p, help="Import a published dataset")

    p = ArgumentParser(description="Compare a dataset's dims, action kind and action count with an environment's; "
                                   "exit 0 if they match, 1 naming every difference otherwise.")
    p.add_argument("path", type=str, help="dataset folder (.zarr)")
    p.add_argument("--env", type=str, default=None, help="environment family (default: the dataset's)")
    p.add_argument("--scenario", type=str, default=None, help="scenario (default: the dataset's)")
    p.add_argument("--env_options", type=dict | None, default=None,
                   help="family options, e.g. '{\"continuous_actions\": true}' (default: the dataset's)")
    commands.add_subcommand("check", p, help="Check a dataset against an environment")

    p = ArgumentParser(description="Combine datasets of one scenario, e.g. the mixed tier from medium and expert.")
    p.add_argument("paths", type=str, nargs="+", help="two or more dataset folders (.zarr)")
    p.add_argument("--out", type=str, required=True, help="target dataset folder (.zarr)")
    p.add_argument("--quality", type=str, required=True, help="quality label of the result, e.g. mixed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    commands.add_subcommand("merge", p, help="Combine datasets of one scenario")

    p = ArgumentParser(description="Write the synthetic point-mass dataset used by tests and smoke runs "
                                   "(not a benchmark; see logo.data.pointmass).")
    p.add_argument("--out", type=str, required=True, help="target dataset folder (.zarr)")
    p.add_argument("--episodes", type=int, default=200, help="number of episodes")
    p.add_argument("--n_agents", type=int, default=3, help="number of agents")
    p.add_argument("--action_kind", type=str, choices=["discrete", "continuous"], default="discrete",
                   help="action space")
    p.add_argument("--epsilon", type=float, default=0.2, help="probability of a random action")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    commands.add_subcommand("synth", p, help="Write a synthetic smoke-test dataset")
    return parser


def main(args: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(args)
    sub = cfg[cfg.command]
    if cfg.command == "info":
        return info(sub.path, sub.json)
    if cfg.command == "validate":
        return validate(sub.path)
    if cfg.command == "import":
        return import_command(sub)
    if cfg.command == "check":
        return check(sub.path, sub.env, sub.scenario, sub.env_options)
    if cfg.command == "merge":
        print(f"wrote {merge_datasets(sub.paths, sub.out, sub.quality, sub.overwrite)}")
        return 0
    kwargs = {k: v for k, v in sub.items() if k != "out"}
    path = generate_synthetic_dataset(sub.out, **kwargs)
    print(f"wrote {path}")
    return 0
