"""Collect every quality tier of the reference scenarios and print their returns and collection throughput.

    python benchmarks/reference_returns.py --out data
    python benchmarks/reference_returns.py --out data --only smax/3m --episodes 200

Tiers per scenario (see logo.collect): random, medium, expert, medium-replay and mixed
(medium + expert). Scripted families (MPE, SMAX) degrade the scripted expert by the per-agent epsilon
below for medium and anneal epsilon from 1 to it for medium-replay. MaMuJoCo uses OnlineTD3
checkpoints and the replay buffer exported while training (configs/behaviour/); give their paths with
--mamujoco_medium/--mamujoco_expert/--mamujoco_replay, else that scenario is skipped. Every dataset is
validated. The printed table is the one in docs/environments.md; the last block is the
REFERENCE_RETURNS entry for logo/envs/references.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from logo.collect import collect
from logo.data.merge import merge_datasets
from logo.data.reader import OfflineDataset
from logo.data.validate import validate_dataset

# family/scenario -> how to collect it (medium_epsilon: per-agent random-action probability of the medium tier)
SUITE = {
    "mpe/simple_spread_v3": {"env": "mpe", "scenario": "simple_spread_v3", "medium_epsilon": 0.65, "num_envs": 8},
    "smax/3m": {"env": "smax", "scenario": "3m", "medium_epsilon": 0.25, "num_envs": 64},
    "smax/5m_vs_6m": {"env": "smax", "scenario": "5m_vs_6m", "medium_epsilon": 0.25, "num_envs": 64},
    "mamujoco/HalfCheetah-2x3": {"env": "mamujoco", "scenario": "HalfCheetah-2x3", "num_envs": 10},
}


def collect_suite(name: str, entry: dict, out: Path, episodes: int, args: argparse.Namespace) -> list[dict]:
    folder = out / entry["env"] / entry["scenario"]
    common = {"env": entry["env"], "scenario": entry["scenario"], "num_envs": entry["num_envs"], "seed": args.seed,
              "overwrite": True, "progress": False}
    episodes = entry.get("episodes", episodes)
    rows = []
    if entry["env"] == "mamujoco":
        episodes = args.mamujoco_episodes
        plans = {"random": {"behaviour": "random"},
                 "medium": {"behaviour": "checkpoint", "checkpoint": args.mamujoco_medium},
                 "expert": {"behaviour": "checkpoint", "checkpoint": args.mamujoco_expert}}
    else:
        eps = entry["medium_epsilon"]
        plans = {"random": {"behaviour": "random"},
                 "medium": {"behaviour": "scripted", "epsilon": eps},
                 "expert": {"behaviour": "scripted"},
                 "medium-replay": {"behaviour": "scripted", "epsilon": eps}}
    for tier, plan in plans.items():
        summary = collect(quality=tier, out=str(folder / f"{tier}.zarr"), episodes=episodes, **common, **plan)
        rows.append(row(name, tier, summary["path"], summary["transitions_per_second"]))
    if entry["env"] == "mamujoco" and args.mamujoco_replay:
        rows.append(row(name, "medium-replay", args.mamujoco_replay, None))
    started = time.perf_counter()
    mixed = merge_datasets([str(folder / "medium.zarr"), str(folder / "expert.zarr")], str(folder / "mixed.zarr"),
                           "mixed", overwrite=True)
    rows.append(row(name, "mixed", str(mixed), None, time.perf_counter() - started))
    return rows


def row(name: str, tier: str, path: str, rate: float | None, _seconds: float | None = None) -> dict:
    problems = validate_dataset(path)
    if problems:
        raise SystemExit(f"{path} is invalid: {problems}")
    data = OfflineDataset.load(path, validate=False)
    returns = data.episode_returns()
    wins = data.attrs.get("collection", {}).get("win_rate")
    return {"scenario": name, "tier": tier, "episodes": data.n_episodes, "transitions": data.n_transitions,
            "return_mean": float(returns.mean()), "return_std": float(returns.std()), "win_rate": wins,
            "transitions_per_s": rate, "path": path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data"), help="root folder of the datasets")
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per tier (MPE, SMAX)")
    parser.add_argument("--mamujoco_episodes", type=int, default=100, help="episodes per tier (MaMuJoCo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help=f"subset of {list(SUITE)}")
    parser.add_argument("--mamujoco_medium", default=None, help="OnlineTD3 checkpoint of the medium level")
    parser.add_argument("--mamujoco_expert", default=None, help="OnlineTD3 checkpoint of the expert level")
    parser.add_argument("--mamujoco_replay", default=None, help="medium-replay dataset exported by ReplayExport")
    args = parser.parse_args()
    rows = []
    for name in args.only or list(SUITE):
        entry = SUITE[name]
        if entry["env"] == "mamujoco" and not (args.mamujoco_medium and args.mamujoco_expert):
            print(f"skipping {name}: give --mamujoco_medium and --mamujoco_expert checkpoints")
            continue
        rows += collect_suite(name, entry, args.out, args.episodes, args)
    print("| scenario | tier | episodes | transitions | return (mean ± std) | win rate | collection transitions/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        win = "" if r["win_rate"] is None else f"{r['win_rate']:.2f}"
        rate = "" if r["transitions_per_s"] is None else f"{r['transitions_per_s']:.0f}"
        print(f"| {r['scenario']} | {r['tier']} | {r['episodes']} | {r['transitions']} | "
              f"{r['return_mean']:.2f} ± {r['return_std']:.2f} | {win} | {rate} |")
    references = {}
    for r in rows:
        if r["tier"] in ("random", "expert"):
            references.setdefault(r["scenario"], {})[r["tier"]] = round(r["return_mean"], 3)
    print("\nREFERENCE_RETURNS entries:\n" + json.dumps(references, indent=4))


if __name__ == "__main__":
    main()
