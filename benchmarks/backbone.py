"""Backbone sweep (issue 19): model-free MACQL variants on the development scenarios, with learning curves.

Each run is one ``logo fit`` of a scenario's policy config with ``configs/sampling/none.yaml`` (real data only)
plus a variant's overrides, evaluated in the environment every 2,500 updates (the config's ``EnvEvaluation``).
A run's curve is summarised into ``benchmarks/results/backbone/<variant>__<scenario>__s<seed>.json``:
normalised score, return, win rate and, over the 500 updates before each evaluation, the mean of
``train/q_data`` and of ``train/rtg_real`` (the data's discounted return-to-go in the same units).
Runs whose result exists are skipped, so the sweep is resumable; a run interrupted mid-fit starts again.

    python benchmarks/backbone.py run --variants joint local_vdn --seeds 0 1 2 --updates 10000 --jobs 2
    python benchmarks/backbone.py table --variants joint local_vdn --updates 10000
    python benchmarks/backbone.py resummarise --variants joint --seeds 0 --updates 10000  # curves again, from runs/

Variants live in ``benchmarks/backbone.yaml`` (name -> list of ``logo fit`` arguments). A variant whose list
starts with ``--with-world-model`` is LOGO+MACQL instead: the policy config's own synthetic source, reading a LOGO
world model fitted once per scenario (``configs/<scenario>/world_model.yaml``, seed 0) into
``runs/backbone/world_model__<scenario>`` on first use. ``--with-world-model=NAME`` reads a world model fitted with
the extra ``logo fit`` arguments that ``_world_models: {NAME: [...]}`` in the same file gives (into
``runs/backbone/world_model__<scenario>__NAME``). ``--bc`` as the first item runs behaviour cloning
(``configs/bc/evaluate_in_env.yaml``) on the scenario's dataset with the same batch size, updates and evaluations.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean, pstdev

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "backbone"
SCENARIOS = {
    "smax_3m": "configs/smax/3m/policy.yaml",
    "mpe_spread": "configs/mpe/simple_spread_v3/policy.yaml",
}
WORLD_MODELS = {
    "smax_3m": "configs/smax/3m/world_model.yaml",
    "mpe_spread": "configs/mpe/simple_spread_v3/world_model.yaml",
}
WITH_WORLD_MODEL = "--with-world-model"
BC = "--bc"
EVALUATION = [{"class_path": "EnvEvaluation", "init_args": {"episodes": 32, "num_envs": 8, "seed": 0,
                                                             "every_n_steps": 2500}}]  # the policy configs' own
UPDATES_PER_EPOCH = 500  # steps_per_epoch of the shipped policy configs
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
_world_model_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def load_variants() -> dict[str, list[str]]:
    return {k: v for k, v in load_file().items() if not k.startswith("_")}


def load_file() -> dict:
    return yaml.safe_load((ROOT / "benchmarks" / "backbone.yaml").read_text())


def result_path(variant: str, scenario: str, seed: int, updates: int) -> Path:
    return RESULTS / f"{variant}__{scenario}__s{seed}__{updates // 1000}k.json"


def run_path(result: Path) -> Path:
    """The run folder of a result file (same name, under runs/backbone/)."""
    return ROOT / "runs" / "backbone" / result.stem


def summarise(metrics_csv: Path) -> list[dict[str, float]]:
    """One entry per evaluation: step, scores, and q_data / rtg_real averaged over the 500 updates before it."""
    rows = list(csv.DictReader(metrics_csv.open()))
    logged: dict[int, dict[str, float]] = {}
    for row in rows:
        step = int(row["step"])
        for key, value in row.items():
            if value and key not in ("step", "epoch"):
                logged.setdefault(step, {})[key] = float(value)
    curve = []
    for step in sorted(logged):
        point = logged[step]
        if "eval/return_mean" not in point:
            continue
        window = [logged[s] for s in logged if step - UPDATES_PER_EPOCH < s <= step]
        q = [p["train/q_data"] for p in window if "train/q_data" in p]
        rtg = [p["train/rtg_real"] for p in window if "train/rtg_real" in p]
        bias = [p["train/td_bias"] for p in window if "train/td_bias" in p]
        curve.append({
            "updates": step + 1 if (step + 1) % 100 == 0 else step,
            "normalized_score": point.get("eval/normalized_score"),
            "return": point["eval/return_mean"],
            "win_rate": point.get("eval/win_rate"),
            "q_data": mean(q) if q else None,
            "rtg_real": mean(rtg) if rtg else None,
            "td_bias": mean(bias) if bias else None,
            "val_td": point.get("val/loss"),
            # the critic's Q_tot of its own greedy actions in the evaluation episodes, and the return that followed
            "q_policy": point.get("eval/q_policy"),
            "rtg_policy": point.get("eval/rtg_policy"),
        })
    return curve


def fit_failed(returncode: int, log: Path) -> bool:
    """A failed ``logo fit``, or one Lightning stopped on SIGTERM (it then exits 0, unfinished)."""
    return bool(returncode) or "Received SIGTERM" in log.read_text()


def world_model(scenario: str, name: str | None = None) -> Path:
    """The scenario's LOGO world-model checkpoint for ``--with-world-model[=NAME]`` variants, fitted on first use
    (with the arguments of ``_world_models: {NAME: [...]}`` in backbone.yaml when NAME is given)."""
    extra: list[str] = []
    if name is not None:
        defined = load_file().get("_world_models") or {}
        if name not in defined:
            raise ValueError(f"--with-world-model={name}: benchmarks/backbone.yaml's _world_models has no {name!r} "
                             f"(it has {sorted(defined)})")
        extra = [str(a) for a in defined[name]]
    run_dir = ROOT / "runs" / "backbone" / (f"world_model__{scenario}" + (f"__{name}" if name else ""))
    with _locks_lock:
        lock = _world_model_locks.setdefault(run_dir.name, threading.Lock())
    with lock:
        found = sorted(run_dir.rglob("best.ckpt")) if (run_dir / "done").exists() else []
        if found:
            return found[0]
        if run_dir.exists():
            shutil.rmtree(run_dir)
        cmd = [sys.executable, "-m", "logo", "fit", "--config", WORLD_MODELS[scenario], "--seed_everything", "0",
               "--trainer.default_root_dir", str(run_dir), "--trainer.logger.init_args.save_dir", str(run_dir),
               "--trainer.enable_progress_bar", "false", *extra]
        run_dir.mkdir(parents=True)
        with (run_dir / "fit.log").open("w") as fh:
            returncode = subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=fh, stderr=subprocess.STDOUT).returncode
        if fit_failed(returncode, run_dir / "fit.log"):
            raise RuntimeError(f"world model of {scenario} failed or was stopped; see {run_dir / 'fit.log'}")
        (run_dir / "done").touch()
        return sorted(run_dir.rglob("best.ckpt"))[0]


def run_one(variant: str, args: list[str], scenario: str, seed: int, updates: int) -> Path:
    out = result_path(variant, scenario, seed, updates)
    if out.exists():
        return out
    if args and args[0].split("=")[0] == WITH_WORLD_MODEL:  # LOGO+MACQL: the config's synthetic source on it
        name = args[0].split("=", 1)[1] if "=" in args[0] else None
        source = ["--data.init_args.synthetic.init_args.world_model", str(world_model(scenario, name)), *args[1:]]
    elif args[:1] == [BC]:  # behaviour cloning on the scenario's dataset and batch size, same evaluations
        data = yaml.safe_load((ROOT / SCENARIOS[scenario]).read_text())["data"]["init_args"]
        source = ["--data.init_args.path", data["path"],
                  "--data.init_args.batch_size", str(data["batch_size"]),
                  "--data.init_args.steps_per_epoch", str(UPDATES_PER_EPOCH),
                  "--data.init_args.val_fraction", str(data["val_fraction"]),
                  "--trainer.callbacks", json.dumps(EVALUATION), *args[1:]]
    else:  # model-free: real data only
        source = ["--config", "configs/sampling/none.yaml", *args]
    run_dir = run_path(out)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    policy = ["--config", "configs/bc/evaluate_in_env.yaml" if args[:1] == [BC] else SCENARIOS[scenario]]
    cmd = [sys.executable, "-m", "logo", "fit", *policy,
           "--trainer.max_epochs", str(updates // UPDATES_PER_EPOCH), "--seed_everything", str(seed),
           "--data.init_args.seed", str(seed), "--trainer.default_root_dir", str(run_dir),
           "--trainer.logger.init_args.save_dir", str(run_dir), "--trainer.enable_progress_bar", "false", *source]
    log = run_dir.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        done = subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    if fit_failed(done.returncode, log):
        raise RuntimeError(f"{variant} {scenario} seed {seed} failed or was stopped (rc {done.returncode}); "
                           f"see {log}")
    metrics = next(run_dir.rglob("metrics.csv"))
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"variant": variant, "args": args, "scenario": scenario, "seed": seed,
                               "updates": updates, "revision": revision, "command": " ".join(cmd[1:]),
                               "curve": summarise(metrics)}, indent=1))
    tmp.replace(out)
    return out


def table(variants: list[str], updates: int, seeds: list[int]) -> str:
    lines = []
    for scenario in SCENARIOS:
        for variant in variants:
            curves = [json.loads(p.read_text())["curve"] for s in seeds
                      if (p := result_path(variant, scenario, s, updates)).exists()]
            if not curves:
                continue
            cells = []
            for i, point in enumerate(curves[0]):
                scores = [c[i]["normalized_score"] for c in curves if len(c) > i]
                q = [c[i]["q_data"] for c in curves if len(c) > i and c[i]["q_data"] is not None]
                rtg = [c[i]["rtg_real"] for c in curves if len(c) > i and c[i]["rtg_real"] is not None]
                ratio = f" q/rtg {mean(q) / mean(rtg):.1f}" if q and rtg and mean(rtg) != 0 else ""
                cells.append(f"{point['updates'] / 1000:g}k {mean(scores):.1f}±{pstdev(scores):.1f}{ratio}")
            lines.append(f"{scenario:10s} {variant:18s} n={len(curves)} | " + " | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "table", "resummarise"])
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    variants = load_variants()
    unknown = [v for v in args.variants if v not in variants]
    if unknown:
        parser.error(f"unknown variants {unknown}; benchmarks/backbone.yaml has {sorted(variants)}")
    if args.action == "table":
        print(table(args.variants, args.updates, args.seeds))
        return 0
    if args.action == "resummarise":  # results written by an older summarise(): their curves again, from the run
        for v, sc, s in ((v, sc, s) for s in args.seeds for v in args.variants for sc in args.scenarios):
            out = result_path(v, sc, s, args.updates)
            run_dir = run_path(out)
            if out.exists() and run_dir.exists():
                result = json.loads(out.read_text())
                result["curve"] = summarise(next(run_dir.rglob("metrics.csv")))
                out.write_text(json.dumps(result, indent=1))
                print(out.name, flush=True)
        return 0
    units = [(v, variants[v], sc, s) for s in args.seeds for v in args.variants for sc in args.scenarios]
    with ThreadPoolExecutor(args.jobs) as pool:
        for path in pool.map(lambda u: run_one(*u, args.updates), units):
            print(path.name, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
