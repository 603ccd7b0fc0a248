"""The benchmark matrix (docs/results.md): scenarios x methods x seeds, one result file per run.

    python benchmarks/matrix.py run --jobs 2              # every run of benchmarks/matrix.yaml not yet done
    python benchmarks/matrix.py run --quick --jobs 2      # the smoke check (~20 min on 2 CPU cores)
    python benchmarks/matrix.py run --only 'smax_3m/*'    # a subset (shell-style pattern on the run keys)
    python benchmarks/matrix.py list [--quick]            # the runs, their dependencies and whether done
    python benchmarks/matrix.py aggregate [--quick] [--update docs/results.md] [--figures DIR]

Every run is a unit with a key such as ``mpe_simple_spread/medium/macql/seed1`` and writes its own JSON
file (``<results>/<key>.json``: config, seed, metrics, wall time, git revision, machine) atomically when
it finishes, so an interrupted ``run`` loses only the units in flight and a rerun skips finished ones.
Units run as subprocesses (``matrix.py unit KEY``), ``--jobs`` at a time, each after the units it needs
(the dataset, and for model-based methods the world model of the same seed). Each fit is the
``logo fit`` of the scenario's shipped configs (``logo.pipeline.fit_stage``) with the matrix's overrides.

``aggregate`` reads whatever result files exist and prints markdown tables (mean ± std over seeds);
``--update FILE`` rewrites the part of FILE between ``<!-- matrix:begin -->`` and ``<!-- matrix:end -->``.
Policy fits evaluate every ``evaluation.every_n_steps`` updates (``EnvEvaluation``), and each result holds that
learning curve next to its final point; ``aggregate`` tabulates the curves and, with ``--update`` or
``--figures``, draws one figure per scenario (``logo curves`` plots any of them too).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from logo import provenance  # git revision, machine and atomic writes of every result file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MATRIX = ROOT / "benchmarks" / "matrix.yaml"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def _sibling(name: str):
    """Another module of this folder, whether this file runs as a script or as ``benchmarks.matrix``."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)




# ----------------------------------------------------------------------------------------------- the matrix

def load_matrix(path: str | Path = DEFAULT_MATRIX, quick: bool = False) -> dict[str, Any]:
    """The matrix YAML with, for ``quick``, its ``quick`` block applied."""
    matrix = yaml.safe_load(Path(path).read_text())
    quick_block = matrix.pop("quick", {}) or {}
    matrix["quick"] = quick
    if quick:
        for key in ("results", "runs", "seeds", "evaluation", "policy_overrides"):
            if key in quick_block:
                matrix[key] = quick_block[key]
        if "scenarios" in quick_block:
            matrix["scenarios"] = [s for s in matrix["scenarios"] if s["name"] in quick_block["scenarios"]]
        for scenario in matrix["scenarios"]:
            for key in ("world_model_updates", "policy_updates"):
                if key in quick_block:
                    scenario[key] = quick_block[key]
        if "ablation_values" in quick_block:
            for ablation in matrix.get("ablations", []):
                ablation["values"] = quick_block["ablation_values"]
    return matrix


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_").replace("__", "_")


@dataclass
class Unit:
    """One run of the matrix."""

    key: str
    kind: str  # dataset | reference | world_model | policy
    scenario: str
    quality: str
    needs: list[str] = field(default_factory=list)
    seed: int | None = None
    world_model: str | None = None  # world-model kind (world_model units and model-based policies)
    method: str | None = None
    ablation: dict[str, Any] | None = None  # {"name", "key", "value"}


def plan(matrix: dict[str, Any]) -> list[Unit]:
    """Every unit of the matrix, in run order (a unit comes after the units it needs)."""
    methods = matrix["methods"]
    units: list[Unit] = []

    def policy(scenario: str, quality: str, method: dict[str, Any], seed: int,
               ablation: dict[str, Any] | None = None) -> Unit:
        base = f"{scenario}/{quality}"
        kind = method.get("world_model")
        suffix = f"_{ablation['name']}{ablation['value']}" if ablation else ""
        return Unit(f"{base}/{slug(method['name'])}{suffix}/seed{seed}", "policy", scenario, quality,
                    [f"{base}/dataset"] + ([world_model_key(scenario, quality, kind, seed)] if kind else []), seed,
                    world_model=kind, method=method["name"], ablation=ablation)

    def cell(scenario: str, quality: str) -> list[Unit]:
        dataset = Unit(f"{scenario}/{quality}/dataset", "dataset", scenario, quality)
        out = [dataset, Unit(f"{scenario}/{quality}/reference", "reference", scenario, quality, [dataset.key])]
        for seed in matrix["seeds"]:
            # world models first so the model-based runs can start; model-free runs fill the gaps
            out += [Unit(world_model_key(scenario, quality, kind, seed), "world_model", scenario, quality,
                         [dataset.key], seed, world_model=kind) for kind in matrix["world_models"]]
            out += [policy(scenario, quality, m, seed) for m in methods if not m.get("world_model")]
            out += [policy(scenario, quality, m, seed) for m in methods if m.get("world_model")]
        return out

    for scenario in matrix["scenarios"]:
        for quality in scenario["datasets"]:
            units += cell(scenario["name"], quality)
        for ablation in matrix.get("ablations", []):
            if ablation["scenario"] != scenario["name"] or ablation["quality"] not in scenario["datasets"]:
                continue
            method = next(m for m in methods if m["name"] == ablation["method"])
            for seed in matrix["seeds"]:
                units += [policy(scenario["name"], ablation["quality"], method, seed,
                                 {"name": ablation["name"], "key": ablation["key"], "value": value})
                          for value in ablation["values"] if value != ablation.get("default")]  # default: own run
    return units


def world_model_key(scenario: str, quality: str, kind: str, seed: int) -> str:
    return f"{scenario}/{quality}/wm_{kind}/seed{seed}"


def result_path(matrix: dict[str, Any], key: str) -> Path:
    return ROOT / matrix["results"] / f"{key}.json"


def read_result(matrix: dict[str, Any], key: str) -> dict[str, Any] | None:
    path = result_path(matrix, key)
    return json.loads(path.read_text()) if path.is_file() else None


def scenario_of(matrix: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in matrix["scenarios"] if s["name"] == name)


def _fit(configs: list[str], overrides: dict[str, Any], run_dir: Path, dataset: str, seed: int):
    from logo.pipeline import Stage, fit_stage

    return fit_stage(Stage(configs, overrides), run_dir, dataset, seed)


def _evaluate(spec, matrix: dict[str, Any], make_policy) -> tuple[Any, dict[str, float] | None]:
    """``make_policy(env_spec)`` played on the matrix's evaluation seeds in the environment of the dataset whose
    ``DatasetSpec`` is ``spec``; returns the result and the dataset's reference returns."""
    from logo.envs.evaluate import evaluate_in_dataset_env

    evaluation = matrix["evaluation"]
    (result,), reference = evaluate_in_dataset_env(spec, [make_policy], evaluation["episodes"],
                                                   evaluation["first_seed"], evaluation["num_envs"])
    return result, reference


def curve_callbacks(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy fits' callbacks: an EnvEvaluation every ``evaluation["every_n_steps"]`` updates on the final
    evaluation's episodes and seeds (its last point is the final evaluation), or none where that is unset."""
    if not evaluation.get("every_n_steps"):
        return []
    return [{"class_path": "EnvEvaluation",
             "init_args": {"episodes": evaluation["episodes"], "num_envs": evaluation["num_envs"],
                           "seed": evaluation["first_seed"], "every_n_steps": evaluation["every_n_steps"]}}]


def _scores(returns, wins, reference: dict[str, float] | None) -> dict[str, Any]:
    """Mean and std of the episode returns, the win rate (where the env has one), the normalised score."""
    import numpy as np

    from logo.envs.evaluate import normalized_score

    out = {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)), "episodes": int(len(returns))}
    if wins is not None and len(wins):
        out["win_rate"] = float(np.mean(wins))
    if reference:
        out["normalized_score"] = normalized_score(out["return_mean"], reference["random"], reference["expert"])
    return out


def run_unit(matrix: dict[str, Any], unit: Unit) -> dict[str, Any]:
    """Run one unit and return its result (not yet written)."""
    import torch

    scenario = scenario_of(matrix, unit.scenario)
    dataset = scenario["datasets"][unit.quality]
    run_dir = ROOT / matrix["runs"] / unit.key
    out: dict[str, Any] = {"key": unit.key, "kind": unit.kind, "scenario": unit.scenario, "quality": unit.quality,
                           "seed": unit.seed, "quick": matrix["quick"], "dataset": dataset["path"]}
    started = time.perf_counter()
    if unit.kind == "dataset":
        import zarr

        from logo.pipeline import ensure_dataset

        if "tiers" in dataset:  # a learned tier: `logo tiers` builds (or finds) the scenario's four tiers
            from logo.tiers import build_tiers

            existed = Path(dataset["path"]).exists()
            options = yaml.safe_load((ROOT / dataset["tiers"]).read_text()) or {}
            if not existed:
                build_tiers(**options)
            if not Path(dataset["path"]).exists():
                raise FileNotFoundError(f"{dataset['tiers']} did not write {dataset['path']}: check its out folder")
            out["collected"] = not existed
            out["command"] = f"logo tiers --config {dataset['tiers']}"
        else:
            out["collected"] = ensure_dataset(dataset["collect"], dataset["path"], {})
            out["command"] = f"logo collect --config {dataset['collect']}"
        attrs = zarr.open_group(dataset["path"], mode="r").attrs
        out["attrs"] = {k: attrs.get(k) for k in ("env_family", "scenario", "quality", "behaviour", "n_transitions",
                                                   "n_episodes", "return_mean", "return_std", "collection",
                                                   "created_at", "created_by")}
    elif unit.kind == "reference":
        from logo.data.reader import OfflineDataset
        from logo.envs.policies import RandomPolicy

        data = OfflineDataset.load(dataset["path"])
        result, reference = _evaluate(data.spec, matrix, lambda env_spec: RandomPolicy(env_spec, 0))
        out["reference_returns"] = reference
        out["random"] = _scores(result.returns, result.wins, reference)
        out["behaviour"] = {**_scores(data.episode_returns(), None, reference), "source": data.spec.behaviour}
    elif unit.kind == "world_model":
        configs = [scenario["world_model"], *matrix["world_models"][unit.world_model]]
        overrides = {"trainer.max_steps": scenario["world_model_updates"], "trainer.max_epochs": -1}
        cli = _fit(configs, overrides, run_dir, dataset["path"], unit.seed)
        from logo.pipeline import checkpoint_of

        checkpoint = checkpoint_of(cli)
        fit_seconds = time.perf_counter() - started
        metrics = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint, verbose=False)[0]
        out.update(world_model=unit.world_model, configs=configs, overrides=overrides,
                   model_class=type(cli.model).__name__, checkpoint=str(Path(checkpoint).relative_to(ROOT)),
                   updates=cli.trainer.global_step, fit_seconds=fit_seconds,
                   params=sum(p.numel() for p in cli.model.parameters()),
                   metrics={k: float(v) for k, v in metrics.items()})
    else:
        from logo.envs.policies import ModulePolicy

        method = next(m for m in matrix["methods"] if m["name"] == unit.method)
        configs = [scenario["policy"] if c == "{policy}" else c for c in method["configs"]]
        overrides: dict[str, Any] = {"trainer.max_steps": scenario["policy_updates"], "trainer.max_epochs": -1,
                                     "trainer.callbacks": curve_callbacks(matrix["evaluation"]),
                                     "trainer.enable_checkpointing": False, **matrix.get("policy_overrides", {})}
        world_model = None
        if unit.world_model:
            wm_key = world_model_key(unit.scenario, unit.quality, unit.world_model, unit.seed)
            wm = read_result(matrix, wm_key)
            if wm is None:
                raise RuntimeError(f"{unit.key}: the world model {wm_key} has no result yet")
            if not (ROOT / wm["checkpoint"]).is_file():  # results are committed, checkpoints (runs/) are not
                raise SystemExit(f"{unit.key}: the checkpoint of {wm_key}, {wm['checkpoint']}, is gone; delete "
                                 f"{result_path(matrix, wm_key)} so that `run` fits that world model again")
            world_model = {"key": wm_key, "checkpoint": wm["checkpoint"]}
            overrides["data.init_args.synthetic.init_args.world_model"] = str(ROOT / wm["checkpoint"])
        if unit.ablation:
            overrides[unit.ablation["key"]] = unit.ablation["value"]
        cli = _fit(configs, overrides, run_dir, dataset["path"], unit.seed)
        from logo.callbacks import EnvEvaluation

        curve = next((c.curve.to_dict() for c in cli.trainer.callbacks if isinstance(c, EnvEvaluation)), None)
        # the fit's own time, without the curve's evaluations (comparable with runs that had none)
        fit_seconds = time.perf_counter() - started - sum(p["eval_seconds"] for p in (curve or {}).get("points", []))
        train_metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if v.numel() == 1}
        module = cli.model.cpu().eval()
        result, reference = _evaluate(cli.datamodule.spec, matrix, lambda env_spec: ModulePolicy(module, env_spec))
        out.update(method=unit.method, world_model=world_model, ablation=unit.ablation, configs=configs,
                   overrides=overrides, model_class=type(module).__name__, updates=cli.trainer.global_step,
                   fit_seconds=fit_seconds, metrics=_scores(result.returns, result.wins, reference),
                   train_metrics=train_metrics, evaluation=matrix["evaluation"], curve=curve)
    out.update(wall_seconds=time.perf_counter() - started, git_revision=provenance.git_revision(),
               machine=provenance.machine(),
               torch_threads=torch.get_num_threads(),
               finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return out


# ----------------------------------------------------------------------------------------------- scheduling

def run(matrix: dict[str, Any], matrix_path: Path, jobs: int = 1, only: list[str] | None = None,
        threads: int = 1) -> int:
    """Run every unfinished unit (matching ``only``), ``jobs`` at a time; returns the number that failed."""
    every = plan(matrix)
    units = [u for u in every if not only or any(fnmatch.fnmatch(u.key, p) for p in only)]
    by_key = {u.key: u for u in every}
    done = {u.key for u in by_key.values() if result_path(matrix, u.key).is_file()}
    todo = [u for u in units if u.key not in done]
    print(f"[matrix] {len(units)} runs selected, {len(units) - len(todo)} already done, {len(todo)} to run "
          f"({jobs} at a time, {threads} torch thread(s) each); results in {matrix['results']}", flush=True)
    failed: set[str] = set()
    running: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore"}
    while todo or running:
        for key, (proc, begun, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[key]
            if proc.returncode == 0 and result_path(matrix, key).is_file():
                done.add(key)
                print(f"[matrix] done   {key} ({time.perf_counter() - begun:.0f} s)", flush=True)
            else:
                failed.add(key)
                print(f"[matrix] FAILED {key} (exit {proc.returncode}; log {log.name})", flush=True)
        for unit in list(todo):
            blocked = [n for n in unit.needs if n in failed or (n not in done and n not in by_key)]
            if blocked:
                failed.add(unit.key)
                todo.remove(unit)
                print(f"[matrix] skip   {unit.key}: needs {', '.join(blocked)}", flush=True)
                continue
            if len(running) >= jobs or not all(n in done for n in unit.needs):
                continue
            todo.remove(unit)
            log_path = ROOT / matrix["runs"] / "logs" / f"{unit.key}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_path, "w")
            cmd = [sys.executable, str(Path(__file__).resolve()), "unit", unit.key, "--matrix", str(matrix_path)]
            if matrix["quick"]:
                cmd.append("--quick")
            print(f"[matrix] start  {unit.key}", flush=True)
            running[unit.key] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env),
                                 time.perf_counter(), log)
        if todo and not running and not any(all(n in done for n in u.needs) for u in todo):
            for unit in todo:  # needs outside the selection that were never run
                failed.add(unit.key)
                print(f"[matrix] skip   {unit.key}: needs {', '.join(n for n in unit.needs if n not in done)} "
                      "(not selected; run it first)", flush=True)
            todo = []
        time.sleep(0.5)
    print(f"[matrix] finished: {len(done)} of {len(by_key)} runs have results; {len(failed)} failed or skipped",
          flush=True)
    return len(failed)


# ----------------------------------------------------------------------------------------------- aggregation

def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every finished run's result under ``results_dir`` (files that fail to parse are reported and skipped)."""
    results = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"[matrix] {path}: unreadable result file, skipped ({exc})", file=sys.stderr)
    return [r for r in results if isinstance(r, dict) and "kind" in r and "key" in r]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for one value)."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def policy_table(results: list[dict[str, Any]], matrix: dict[str, Any], scenario: str, quality: str) -> str:
    """Methods of one (scenario, quality): return, normalised score and win rate as mean ± std over seeds."""
    cell = [r for r in results if r["scenario"] == scenario and r["quality"] == quality]
    policies = [r for r in cell if r["kind"] == "policy" and not r.get("ablation")]
    reference = next((r for r in cell if r["kind"] == "reference"), None)
    has_score = any("normalized_score" in r["metrics"] for r in policies) or bool(
        reference and reference.get("reference_returns"))
    has_wins = any("win_rate" in r["metrics"] for r in policies)
    header = ["method", "seeds", "return", *(["normalised"] if has_score else []), *(["win rate"] if has_wins else []),
              "updates", "fit s / run"]
    rows = []
    if reference:
        for name in ("random", "behaviour"):
            ref = reference[name]
            note = "(evaluated)" if name == "random" else f"(dataset, {ref['episodes']} episodes)"
            row = [f"{name} {note}", "–", f"{ref['return_mean']:.2f} ± {ref['return_std']:.2f}"]
            if has_score:
                row.append(f"{ref['normalized_score']:.1f}" if "normalized_score" in ref else "–")
            if has_wins:
                row.append(f"{ref['win_rate']:.2f}" if "win_rate" in ref else "–")
            rows.append(row + ["–", "–"])
    names = [m["name"] for m in matrix["methods"]]
    names += sorted({r["method"] for r in policies} - set(names))
    for name in names:
        runs = [r for r in policies if r["method"] == name]
        if not runs:
            continue
        metric = [r["metrics"] for r in runs]
        row = [name, str(len(runs)), fmt([m["return_mean"] for m in metric])]
        if has_score:
            row.append(fmt([m["normalized_score"] for m in metric if "normalized_score" in m], 1))
        if has_wins:
            row.append(fmt([m["win_rate"] for m in metric if "win_rate" in m]))
        updates = sorted({r["updates"] for r in runs})
        row += ["/".join(map(str, updates)), f"{mean_std([r['fit_seconds'] for r in runs])[0]:.0f}"]
        rows.append(row)
    return markdown(header, rows)


def world_model_table(results: list[dict[str, Any]], matrix: dict[str, Any], scenario: str, quality: str) -> str:
    """The world models of one (scenario, quality), on the held-out episodes, mean ± std over seeds."""
    cell = [r for r in results if r["kind"] == "world_model" and r["scenario"] == scenario
            and r["quality"] == quality]
    columns = [("1-step state MSE", "val/mse_state", 4), ("15-step open-loop state MSE", "val/open_loop_mse_k15", 3),
               ("reward MSE", "val/mse_reward", 3), ("Spearman(u, error)", "val/spearman_u_error", 2)]
    header = ["world model", "seeds", "params", *(c[0] for c in columns), "updates", "fit s / run"]
    rows = []
    kinds = [k for k in matrix["world_models"]] + sorted({r["world_model"] for r in cell} - set(matrix["world_models"]))
    for kind in [k for k in kinds if any(r["world_model"] == k for r in cell)]:
        runs = [r for r in cell if r["world_model"] == kind]
        row = [kind, str(len(runs)), f"{runs[0]['params'] / 1e6:.2f}M"]
        for _, key, digits in columns:
            row.append(fmt([r["metrics"][key] for r in runs if key in r["metrics"]], digits))
        row += ["/".join(map(str, sorted({r["updates"] for r in runs}))),
                f"{mean_std([r['fit_seconds'] for r in runs])[0]:.0f}"]
        rows.append(row)
    return markdown(header, rows)


def ablation_table(results: list[dict[str, Any]], matrix: dict[str, Any], ablation: dict[str, Any]) -> str:
    runs = [r for r in results if r["kind"] == "policy" and r["scenario"] == ablation["scenario"]
            and r["quality"] == ablation["quality"] and r["method"] == ablation["method"]]
    header = [ablation["name"], "seeds", "return", "normalised", "win rate"]
    rows = []
    for value in ablation["values"]:
        chosen = [r for r in runs if (r.get("ablation") or {}).get("value") == value
                  or (not r.get("ablation") and value == ablation.get("default"))]
        if not chosen:
            continue
        metric = [r["metrics"] for r in chosen]
        label = f"{value} (default)" if value == ablation.get("default") else str(value)
        rows.append([label, str(len(chosen)), fmt([m["return_mean"] for m in metric]),
                     fmt([m["normalized_score"] for m in metric if "normalized_score" in m], 1),
                     fmt([m["win_rate"] for m in metric if "win_rate" in m])])
    return markdown(header, rows)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def provenance_line(runs: list[dict[str, Any]]) -> str:
    revisions = sorted({str(r.get("git_revision")) for r in runs})
    machines = sorted({f"{r['machine']['cpu']}, {r['machine']['cores']} cores, "
                       f"{r.get('torch_threads', r['machine']['torch_threads'])} torch thread(s)"
                       + (f", {r['machine']['gpu']}" if r["machine"].get("gpu") else "")
                       for r in runs if "machine" in r})
    wall = sum(r.get("wall_seconds", 0.0) for r in runs)
    return (f"{len(runs)} runs; revisions {', '.join(revisions)}; {'; '.join(machines)}; "
            f"{wall / 3600:.1f} h of run time in all")


def curve_section(policies: list[dict[str, Any]], matrix: dict[str, Any], scenario: str, quality: str,
                  figures: Path | None, link_from: Path) -> list[str]:
    """Markdown lines on the learning curves of one (scenario, quality)'s methods: a figure (written to ``figures``
    where given; mean ± std over seeds per method) and a table of the score at each evaluation."""
    from logo.curves import curve_from_dict, curve_table, default_panels

    curves = [c for r in policies if (c := curve_from_dict(r, r["key"])) is not None and c.points]
    if not curves:
        return []
    order = [m["name"] for m in matrix["methods"]]
    groups: dict[str, list] = {}
    for curve in sorted(curves, key=lambda c: (order.index(c.label) if c.label in order else len(order), c.label)):
        groups.setdefault(curve.label, []).append(curve)
    every = sorted({r["evaluation"].get("every_n_steps") for r in policies if r.get("curve")} - {None})
    have = set().union(*(c.metrics() for c in curves))
    score = "normalized_score" if "normalized_score" in have else "return_mean"
    lines = ["", f"Learning curves: every {'/'.join(map(str, every))} updates on the same episodes and seeds as the "
             f"final evaluation (its last point is the final point above); `{score}`, mean ± std over seeds:", "",
             curve_table(groups, score, 1 if score == "normalized_score" else 2)]
    q = "train/q_data_real"  # logo.curves gives runs on real data only this split too
    if q in have and "train/rtg_real" in have:
        rtg = [p["train/rtg_real"] for c in curves for p in c.points if "train/rtg_real" in p]
        lines += ["", f"`{q}` (the critic's value of the data's actions on real rows, mean over the updates before "
                  f"each point) against the data's discounted return-to-go on the same rows (`train/rtg_real`, "
                  f"{sum(rtg) / len(rtg):.2f} on average over every point):", "", curve_table(groups, q, 2)]
    if figures is not None:
        from logo.curves import plot_curves

        path = plot_curves(groups, Path(figures) / f"curves_{scenario}_{quality}.png", default_panels(curves),
                           f"{scenario}, {quality}: mean ± std over seeds")
        lines += ["", f"![learning curves, {scenario} {quality}]({os.path.relpath(path, link_from)})"]
    return lines


def aggregate(matrix: dict[str, Any], results: list[dict[str, Any]] | None = None, figures: Path | None = None,
              link_from: Path | None = None) -> str:
    """Markdown tables of every (scenario, quality) that has results, then the ablations. With ``figures``, the
    learning-curve figures go there, linked relative to ``link_from`` (the markdown file's folder)."""
    if results is None:
        results = load_results(ROOT / matrix["results"])
    parts = []
    for scenario in matrix["scenarios"]:
        for quality, dataset in scenario["datasets"].items():
            cell = [r for r in results if r["scenario"] == scenario["name"] and r["quality"] == quality]
            if not any(r["kind"] in ("policy", "world_model") for r in cell):
                continue
            data = next((r for r in cell if r["kind"] == "dataset"), None)
            title = f"### {scenario['name']}, {quality}"
            lines = [title, ""]
            if data:
                attrs = data["attrs"]
                lines.append(f"Dataset `{dataset['path']}`: {attrs['n_episodes']} episodes, {attrs['n_transitions']} "
                             f"transitions, return {attrs['return_mean']:.2f} ± {attrs['return_std']:.2f} "
                             f"({attrs['behaviour']}); made by `{data['command']}`.")
            policies = [r for r in cell if r["kind"] == "policy" and not r.get("ablation")]
            if policies:
                evaluation = policies[0]["evaluation"]
                lines.append(f"Policies: {scenario['policy_updates']} updates each, final weights evaluated on "
                             f"{evaluation['episodes']} episodes (env seeds {evaluation['first_seed']}.."
                             f"{evaluation['first_seed'] + evaluation['episodes'] - 1}); mean ± std over seeds "
                             f"of each seed's mean.")
                lines += ["", policy_table(results, matrix, scenario["name"], quality)]
                lines += curve_section(policies, matrix, scenario["name"], quality, figures,
                                       Path(link_from or Path.cwd()))
            if any(r["kind"] == "world_model" for r in cell):
                lines += ["", f"World models ({scenario['world_model_updates']} updates, best validation "
                          "checkpoint, held-out episodes):", "",
                          world_model_table(results, matrix, scenario["name"], quality)]
            lines += ["", f"<sub>{provenance_line([r for r in cell if r['kind'] in ('policy', 'world_model')])}</sub>"]
            parts.append("\n".join(lines))
    for ablation in matrix.get("ablations", []):
        if any(r.get("ablation") and r["scenario"] == ablation["scenario"] for r in results):
            parts.append(f"### Ablation: {ablation['name']} ({ablation['method']}, {ablation['scenario']}, "
                         f"{ablation['quality']})\n\n" + ablation_table(results, matrix, ablation))
    return "\n\n".join(parts) if parts else "(no results yet)"


def update_file(path: Path, text: str) -> None:
    """Replace the text between the matrix markers of ``path`` with ``text``."""
    doc = path.read_text()
    if BEGIN not in doc or END not in doc or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(f"{path}: expected the markers {BEGIN} ... {END} to put the tables between")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


# ----------------------------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "list", "aggregate", "unit"):
        p = sub.add_parser(name)
        p.add_argument("--matrix", default=str(DEFAULT_MATRIX), help="the matrix YAML")
        p.add_argument("--quick", action="store_true", help="the smoke-check matrix (its own results folder)")
        if name == "run":
            p.add_argument("--jobs", type=int, default=1, help="units run at once (one process each)")
            p.add_argument("--threads", type=int, default=1, help="torch threads per unit")
            p.add_argument("--only", nargs="+", help="shell-style patterns on the run keys")
        if name == "aggregate":
            p.add_argument("--update", help="markdown file whose matrix markers receive the tables")
            p.add_argument("--figures", help="folder for the learning-curve figures (default with --update: "
                                             "figures/matrix next to that file; else none)")
        if name == "unit":
            p.add_argument("key")
    args = parser.parse_args(argv)
    matrix = load_matrix(args.matrix, args.quick)
    if args.command == "list":
        for unit in plan(matrix):
            state = "done" if result_path(matrix, unit.key).is_file() else "todo"
            print(f"{state}  {unit.key}" + (f"  (needs {', '.join(unit.needs)})" if unit.needs else ""))
        return 0
    if args.command == "run":
        return 1 if run(matrix, Path(args.matrix).resolve(), args.jobs, args.only, args.threads) else 0
    if args.command == "aggregate":
        figures = args.figures or (Path(args.update).parent / "figures" / "matrix" if args.update else None)
        link_from = Path(args.update).parent if args.update else Path.cwd()
        text = aggregate(matrix, figures=Path(figures) if figures else None, link_from=link_from)
        engineering = ROOT / Path(matrix["results"]).parent / "engineering"
        if engineering.is_dir():
            text += "\n\n## Engineering figures\n\n" + _sibling("engineering").tables(engineering)
        if args.update:
            update_file(Path(args.update), text)
            print(f"[matrix] tables written into {args.update}")
        else:
            print(text)
        return 0
    unit = next((u for u in plan(matrix) if u.key == args.key), None)
    if unit is None:
        raise SystemExit(f"unit {args.key!r} is not in {args.matrix} (see `matrix.py list`)")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    os.chdir(ROOT)  # the configs' relative paths
    result = run_unit(matrix, unit)
    provenance.write_json(result_path(matrix, unit.key), result)
    print(json.dumps({k: result.get(k) for k in ("key", "metrics", "wall_seconds")}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
