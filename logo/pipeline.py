"""``logo pipeline``: the whole LOGO chain in one command, through the same code paths as the single stages.

1. ``logo collect`` the dataset named by ``collect`` (skipped when the dataset already exists);
2. ``logo fit`` the world model (stage one);
3. ``logo fit`` the baselines and LOGO+MACQL on that dataset (BC, MACQL on real data only, LOGO+MACQL
   rolling the policy out in the stage-one checkpoint);
4. evaluate every trained policy, a uniformly random policy and (from the dataset) the behaviour
   policy on the same fixed environment seeds (with ``planner``, also the ``planner_methods`` planning
   with MPC in the world model, as rows ``NAME + MPC``), print a table and write it as ``results.json``
   in the run folder, whose path is printed last.

Each fit is ``LogoCLI(["fit", "--config", ...])`` with the stage's configs and overrides, so
anything the pipeline does can be repeated stage by stage with ``logo fit``.

``seed`` may be a list (``seed: [0, 1, 2]``): steps 2-4 then run once per training seed, each through the
one-seed path into ``out/seed_<n>/`` (its own world model, unless ``world_model_checkpoint`` names one, its own
policies, its own ``results.json``, evaluated on the same environment seeds ``eval_seed ..`` as every other
seed), and ``out/results.json`` gets, per method, the mean and standard deviation over the training seeds
(population std, ddof 0) of the return and normalised score together with every seed's values. The run is
incremental: a seed whose ``results.json`` exists is reused, not rerun, so an interrupted run resumes where it
stopped (a seed folder without ``results.json`` is an unfinished run and is cleared first).
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser

from logo import __version__
from logo.errors import LogoError
from logo.planning import MPCOptions
from logo.provenance import PACKAGE, git, write_json


@dataclass
class Stage:
    """One ``logo fit`` of the pipeline.

    Args:
        config: YAML config(s), stacked in order (as repeated ``--config``).
        overrides: dotted keys and values appended as ``--key value`` (e.g. ``trainer.max_epochs: 4``).
    """

    config: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Method:
    """A policy to train and report: a stage plus the table's name for it."""

    name: str
    stage: Stage
    uses_world_model: bool = False


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "null" if value is None else str(value)


def fit_stage(stage: Stage, run_dir: Path, dataset: str, seed: int, extra: dict[str, Any] | None = None):
    """``logo fit`` one stage into ``run_dir``; returns the LightningCLI object (trainer, model, datamodule)."""
    from logo.cli import LogoCLI

    args = ["fit"]
    for config in stage.config:
        args += ["--config", config]
    settings = {"seed_everything": seed, "data.init_args.path": dataset, "trainer.default_root_dir": str(run_dir),
                "trainer.logger.init_args.save_dir": str(run_dir), "trainer.enable_progress_bar": False,
                **stage.overrides, **(extra or {})}
    for key, value in settings.items():
        args += [f"--{key}", _cli_value(value)]
    return LogoCLI(args=args)


def checkpoint_of(cli) -> str:
    """The checkpoint a finished fit selected (the monitored best), else its last one."""
    callback = cli.trainer.checkpoint_callback
    path = (callback.best_model_path or callback.last_model_path) if callback is not None else ""
    if not path:
        raise LogoError("the world-model stage wrote no checkpoint: keep a ModelCheckpoint in its config")
    return path


SEED_MAX = 2**32 - 1  # seed_everything takes an unsigned 32-bit seed
SEED_STD = "population standard deviation over the training seeds (ddof 0)"


def run_pipeline(collect: str, dataset: str, world_model: Stage, methods: list[Method],
                 out: str = "runs/pipeline", collect_overrides: dict[str, Any] | None = None,
                 world_model_checkpoint: str | None = None,
                 eval_episodes: int = 32, eval_seed: int = 10_000, eval_num_envs: int = 8, seed: int | list[int] = 0,
                 planner: MPCOptions | None = None, planner_methods: list[str] | None = None) -> Path:
    """Run the chain (see the module docstring) and return the path of ``results.json``.

    Args:
        collect: ``logo collect`` config that generates the dataset when it does not exist.
        dataset: path of the dataset (collected there if absent; an existing one is reused).
        world_model: the world-model stage.
        methods: the policies to train, in table order.
        out: parent folder of the run folders (one timestamped folder per one-seed run; ``seed_<n>`` folders and
            the combined ``results.json`` when ``seed`` is a list).
        collect_overrides: values replacing the collect config's (e.g. ``episodes``).
        world_model_checkpoint: an existing world-model checkpoint to use instead of fitting stage one (for
            every seed, when ``seed`` is a list).
        eval_episodes: evaluation episodes per policy, on seeds ``eval_seed ..``; the same seeds for every row.
        eval_seed: first evaluation seed (apart from the seeds used for checkpoint selection during fit).
        eval_num_envs: environment copies stepped together in the final evaluation.
        seed: ``seed_everything`` of every fit; a list of distinct seeds runs the chain once per seed into
            ``out/seed_<n>/`` (finished seeds are reused) and reports the mean ± std over seeds.
        planner: also evaluate ``planner_methods`` planning with MPC (:class:`~logo.planning.MPCPlanner`) in
            ``planner.world_model``, default the stage-one world model; rows ``NAME + MPC``.
        planner_methods: names of the methods MPC plans around; default: those with ``uses_world_model``.
    """
    started = time.perf_counter()
    seeds = check_seeds(seed)
    if planner is not None:
        known = [m.name for m in methods]
        planner_methods = [m.name for m in methods if m.uses_world_model] if planner_methods is None \
            else planner_methods
        unknown = [name for name in planner_methods if name not in known]
        if unknown:
            raise LogoError(f"planner_methods: {unknown} are not among the methods {known}")
    if world_model_checkpoint is not None and not Path(world_model_checkpoint).is_file():
        raise LogoError(f"world_model_checkpoint: {world_model_checkpoint}: no such file")
    chain = dict(dataset=dataset, world_model=world_model, methods=methods,
                 world_model_checkpoint=world_model_checkpoint, eval_episodes=eval_episodes, eval_seed=eval_seed,
                 eval_num_envs=eval_num_envs, planner=planner, planner_methods=planner_methods)
    if isinstance(seed, int):  # one seed: the layout and report of before lists were allowed
        run_dir = Path(out) / datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir.mkdir(parents=True, exist_ok=False)
        clock = time.perf_counter()
        collected = ensure_dataset(collect, dataset, collect_overrides or {})
        results = run_seed(run_dir, seed, collected, {"collect": time.perf_counter() - clock}, started, **chain)
        path = run_dir / "results.json"
        print(format_table(results["rows"], results["total_seconds"]), flush=True)
        print(path, flush=True)
        return path

    out_dir = Path(out)
    done = {}
    for n in seeds:  # check every finished seed before fitting anything, so a mismatch fails at once
        previous = out_dir / f"seed_{n}" / "results.json"
        if previous.is_file():
            done[n] = json.loads(previous.read_text())
            check_reusable(previous, done[n], n, **chain)
    clock = time.perf_counter()
    collected = ensure_dataset(collect, dataset, collect_overrides or {})
    timings = {"collect": time.perf_counter() - clock}
    per_seed = {}
    for n in seeds:
        seed_dir = out_dir / f"seed_{n}"
        if n in done:
            print(f"[pipeline] seed {n}: {seed_dir / 'results.json'} exists: reusing it, not rerunning "
                  f"(delete {seed_dir} to rerun)", flush=True)
            per_seed[n] = done[n]
            continue
        if seed_dir.exists():
            print(f"[pipeline] seed {n}: {seed_dir} has no results.json (an unfinished run): clearing it", flush=True)
            shutil.rmtree(seed_dir)
        seed_dir.mkdir(parents=True)
        print(f"[pipeline] seed {n} of {seeds}: {seed_dir}", flush=True)
        clock = time.perf_counter()
        per_seed[n] = run_seed(seed_dir, n, collected, {}, clock, **chain)
        print(format_table(per_seed[n]["rows"], per_seed[n]["total_seconds"]), flush=True)
        timings[f"seed_{n}"] = time.perf_counter() - clock
    rows = combine_seeds({n: r["rows"] for n, r in per_seed.items()})
    first = per_seed[seeds[0]]
    results = {
        "rows": rows, "std": SEED_STD, "seed": seeds,
        "seed_results": {str(n): str(out_dir / f"seed_{n}" / "results.json") for n in seeds},
        "reused_seeds": [n for n in seeds if n in done], "reference_returns": first["reference_returns"],
        "dataset": dataset, "dataset_collected": collected,
        "world_model_checkpoints": {str(n): r["world_model_checkpoint"] for n, r in per_seed.items()},
        "evaluation": first["evaluation"], "planner": None if planner is None else {
            **planner.__dict__, "methods": planner_methods},
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.perf_counter() - started, 1), "logo_version": __version__,
        "git_revision": git("rev-parse", "--short", "HEAD", cwd=PACKAGE), "torch": torch.__version__,
        "machine": platform.platform(), "world_model_stage": world_model.__dict__, "methods": _methods_record(methods)}
    path = out_dir / "results.json"
    write_json(path, results)
    print(format_seeds_table(rows, seeds, results["total_seconds"]), flush=True)
    print(path, flush=True)
    return path


def run_seed(run_dir: Path, seed: int, collected: bool, timings: dict[str, float], started: float, *, dataset: str,
             world_model: Stage, methods: list[Method], world_model_checkpoint: str | None, eval_episodes: int,
             eval_seed: int, eval_num_envs: int, planner: MPCOptions | None, planner_methods: list[str] | None
             ) -> dict[str, Any]:
    """Steps 2-4 for one training seed into ``run_dir``: fit, evaluate, write ``run_dir/results.json``; returns it.

    ``timings`` (seconds, e.g. the collection's) is extended by the stages; ``started`` is the
    ``time.perf_counter()`` that ``total_seconds`` counts from.
    """
    clock = time.perf_counter()
    if world_model_checkpoint is None:
        wm_checkpoint = checkpoint_of(fit_stage(world_model, run_dir / "world_model", dataset, seed))
    else:
        wm_checkpoint = world_model_checkpoint
    timings["world_model"] = time.perf_counter() - clock
    print(f"[pipeline] world model: {wm_checkpoint}", flush=True)

    policies = {}
    for method in methods:
        clock = time.perf_counter()
        extra = {"data.init_args.synthetic.init_args.world_model": wm_checkpoint} if method.uses_world_model else {}
        cli = fit_stage(method.stage, run_dir / _slug(method.name), dataset, seed, extra)
        policies[method.name] = (cli.model, cli.trainer.global_step)
        timings[method.name] = time.perf_counter() - clock

    clock = time.perf_counter()
    if planner is not None and planner.world_model is None:
        planner = MPCOptions(**{**planner.__dict__, "world_model": wm_checkpoint})
    planned = {name: planner for name in (planner_methods or [])} if planner is not None else {}
    rows, reference = evaluate_rows(dataset, policies, eval_episodes, eval_seed, eval_num_envs, seed, planned)
    timings["evaluation"] = time.perf_counter() - clock
    for row in rows:
        row["fit_seconds"] = round(timings.get(row["method"], 0.0), 1)
    results = {
        "rows": rows, "reference_returns": reference, "dataset": dataset, "dataset_collected": collected,
        "world_model_checkpoint": wm_checkpoint, "evaluation": {"episodes": eval_episodes, "first_seed": eval_seed},
        "planner": None if planner is None else {**planner.__dict__, "methods": planner_methods},
        "seed": seed, "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.perf_counter() - started, 1), "logo_version": __version__,
        "git_revision": git("rev-parse", "--short", "HEAD", cwd=PACKAGE), "torch": torch.__version__,
        "machine": platform.platform(), "world_model_stage": world_model.__dict__, "methods": _methods_record(methods)}
    write_json(run_dir / "results.json", results)
    return results


def check_seeds(seed: int | list[int]) -> list[int]:
    """The training seeds ``seed`` names (one int or a list); a LogoError naming ``seed`` if they are unusable."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if isinstance(seed, list) and not seeds:
        raise LogoError("seed: an empty list; give one seed (seed: 0) or a list of distinct seeds (seed: [0, 1, 2])")
    bad = [n for n in seeds if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= SEED_MAX]
    if bad:
        raise LogoError(f"seed: {bad} in {seed} {'is' if len(bad) == 1 else 'are'} not a seed; seeds are integers "
                        f"from 0 to {SEED_MAX}")
    repeated = sorted({n for n in seeds if seeds.count(n) > 1})
    if repeated:
        raise LogoError(f"seed: {repeated} appear(s) more than once in {seed}; each training seed runs once, give "
                        "distinct seeds")
    return seeds


def check_reusable(path: Path, previous: dict[str, Any], seed: int, *, dataset: str, world_model: Stage,
                   methods: list[Method], world_model_checkpoint: str | None, eval_episodes: int, eval_seed: int,
                   planner: MPCOptions | None, planner_methods: list[str] | None, **_) -> None:
    """A LogoError naming what differs if the finished seed at ``path`` was run with other settings than these."""
    expected = {"seed": seed, "dataset": dataset, "evaluation": {"episodes": eval_episodes, "first_seed": eval_seed},
                "world_model_stage": world_model.__dict__, "methods": _methods_record(methods)}
    if world_model_checkpoint is not None:
        expected["world_model_checkpoint"] = world_model_checkpoint
    expected = json.loads(json.dumps(expected, default=str))  # compare as the file stores them
    differ = [key for key, value in expected.items() if previous.get(key) != value]
    planned = [f"{name} + MPC" for name in (planner_methods or [])] if planner is not None else []
    rows = ["random", "behaviour", *(m.name for m in methods), *planned]
    if [r["method"] for r in previous.get("rows", [])] != rows:
        differ.append("rows")
    if differ:
        raise LogoError(f"seed: {path} was written with other settings ({', '.join(differ)} differ), so seed {seed} "
                        f"cannot be reused; delete {path.parent} to rerun it, or choose another out")


def combine_seeds(per_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method: the mean and population std (ddof 0) over training seeds of each seed's mean return,
    normalised score and win rate, with every seed's values under ``per_seed``.

    ``per_seed`` maps each training seed to its rows (from :func:`evaluate_rows`), every seed with the same methods.
    """
    combined = []
    for i, first in enumerate(next(iter(per_seed.values()))):
        rows = {n: seed_rows[i] for n, seed_rows in per_seed.items()}
        entry = {"method": first["method"], "seeds": list(rows), "episodes": first["episodes"],
                 "updates": first["updates"] if len({r["updates"] for r in rows.values()}) == 1 else None,
                 "source": first["source"]}
        for key, std_key in (("return_mean", "return_std_over_seeds"),
                             ("normalized_score", "normalized_score_std_over_seeds"),
                             ("win_rate", "win_rate_std_over_seeds")):
            if all(key in r for r in rows.values()):
                values = np.array([r[key] for r in rows.values()])
                entry[key], entry[std_key] = float(values.mean()), float(values.std(ddof=0))
        entry["fit_seconds"] = round(float(np.mean([r.get("fit_seconds", 0.0) for r in rows.values()])), 1)
        entry["per_seed"] = [{"seed": n, **{k: r[k] for k in ("return_mean", "return_std", "normalized_score",
                                                              "win_rate", "updates", "fit_seconds") if k in r}}
                             for n, r in rows.items()]
        combined.append(entry)
    return combined


def _methods_record(methods: list[Method]) -> list[dict[str, Any]]:
    return [{"name": m.name, "uses_world_model": m.uses_world_model, **m.stage.__dict__} for m in methods]


def ensure_dataset(collect_config: str, dataset: str, overrides: dict[str, Any]) -> bool:
    """Collect the dataset with ``collect_config`` (+ overrides) unless it exists; returns whether it collected."""
    from logo.collect import collect
    from logo.data.validate import open_dataset

    if Path(dataset).exists():
        open_dataset(dataset)  # a clear error if the folder is not a logo dataset
        print(f"[pipeline] dataset {dataset} exists: using it", flush=True)
        return False
    try:
        options = yaml.safe_load(Path(collect_config).read_text()) or {}
    except FileNotFoundError as exc:
        raise LogoError(f"collect: config {collect_config}: no such file") from exc
    options = {**options, **overrides, "out": dataset, "progress": False}
    print(f"[pipeline] collecting {dataset} ({options.get('episodes')} episodes of {options.get('env')}/"
          f"{options.get('scenario')})", flush=True)
    collect(**options)
    return True


def evaluate_rows(dataset: str, policies: dict[str, tuple[Any, int]], episodes: int, first_seed: int,
                  num_envs: int, seed: int, planned: dict[str, MPCOptions] | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, float] | None]:
    """One row per method: random and behaviour references, then every trained policy, then ``NAME + MPC`` for
    each policy named in ``planned`` (planning around it with those options), all on the same env seeds."""
    from logo.data.reader import OfflineDataset
    from logo.envs.evaluate import evaluate_in_dataset_env, normalized_score
    from logo.envs.policies import ModulePolicy, RandomPolicy
    from logo.planning import MPCPlanner, load_planner_model

    planned = planned or {}
    data = OfflineDataset.load(dataset)
    makers = [lambda env_spec: RandomPolicy(env_spec, seed)]  # then the trained policies, final weights on CPU
    makers += [lambda env_spec, module=module: ModulePolicy(module.cpu().eval(), env_spec)
               for module, _ in policies.values()]
    makers += [lambda env_spec, name=name, options=options: MPCPlanner(
        policies[name][0].cpu().eval(), load_planner_model(options, env_spec), env_spec, options, seed)
        for name, options in planned.items()]
    (random, *trained), reference = evaluate_in_dataset_env(data.spec, makers, episodes, first_seed, num_envs)
    rows = []

    def row(method: str, returns: np.ndarray, wins: np.ndarray | None, updates: int | None, source: str) -> None:
        entry = {"method": method, "return_mean": float(returns.mean()), "return_std": float(returns.std()),
                 "episodes": int(len(returns)), "updates": updates, "source": source}
        if wins is not None:
            entry["win_rate"] = float(np.mean(wins))
        if reference:
            entry["normalized_score"] = normalized_score(entry["return_mean"], reference["random"],
                                                         reference["expert"])
        rows.append(entry)

    row("random", random.returns, random.wins, None, "uniform random legal actions, evaluated")
    returns = data.episode_returns()
    row("behaviour", returns, None, None, f"mean over the dataset's {len(returns)} episodes ({data.spec.behaviour})")
    for (name, (_, updates)), result in zip(policies.items(), trained):
        row(name, result.returns, result.wins, updates, "final weights, evaluated")
    for name, result in zip(planned, trained[len(policies):]):
        row(f"{name} + MPC", result.returns, result.wins, policies[name][1],
            "final weights, MPC in the world model, evaluated")
        rows[-1].update({k: round(v, 3) for k, v in result.extra.items()})
    return rows, reference


def format_table(rows: list[dict[str, Any]], total_seconds: float) -> str:
    """The results as an aligned text table."""
    has_score = any("normalized_score" in r for r in rows)
    has_wins = any("win_rate" in r for r in rows)
    header = ["method", "return", "episodes", "updates"] + (["normalised"] if has_score else []) \
        + (["win rate"] if has_wins else []) + ["fit s"]
    lines = []
    for r in rows:
        line = [r["method"], f"{r['return_mean']:.2f} ± {r['return_std']:.2f}", str(r["episodes"]),
                "" if r["updates"] is None else str(r["updates"])]
        if has_score:
            line.append(f"{r['normalized_score']:.1f}" if "normalized_score" in r else "")
        if has_wins:
            line.append(f"{r['win_rate']:.2f}" if "win_rate" in r else "")
        line.append(f"{r['fit_seconds']:.0f}" if r.get("fit_seconds") else "")
        lines.append(line)
    return _align(header, lines) + f"\n(total {total_seconds:.0f} s)"


def format_seeds_table(rows: list[dict[str, Any]], seeds: list[int], total_seconds: float) -> str:
    """The rows of :func:`combine_seeds` as an aligned text table: mean ± std over the training seeds, then each
    seed's mean return (and normalised score)."""
    has_score = any("normalized_score" in r for r in rows)
    has_wins = any("win_rate" in r for r in rows)
    header = ["method", f"return ({len(seeds)} seeds)"] + (["normalised"] if has_score else []) \
        + (["win rate"] if has_wins else []) + ["updates"] + [f"seed {n}" for n in seeds]
    lines = []
    for r in rows:
        line = [r["method"], f"{r['return_mean']:.2f} ± {r['return_std_over_seeds']:.2f}"]
        if has_score:
            line.append(f"{r['normalized_score']:.1f} ± {r['normalized_score_std_over_seeds']:.1f}"
                        if "normalized_score" in r else "")
        if has_wins:
            line.append(f"{r['win_rate']:.2f} ± {r['win_rate_std_over_seeds']:.2f}" if "win_rate" in r else "")
        line.append("" if r["updates"] is None else str(r["updates"]))
        for one in r["per_seed"]:
            score = f" ({one['normalized_score']:.1f})" if "normalized_score" in one else ""
            line.append(f"{one['return_mean']:.2f}{score}")
        lines.append(line)
    episodes = rows[0]["episodes"] if rows else 0
    return _align(header, lines) + (f"\n(mean ± std over training seeds {seeds}, std with ddof 0, of each seed's mean "
                                    f"return over its {episodes} evaluation episodes; total {total_seconds:.0f} s)")


def _align(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*line) for line in lines]
    return "\n".join(out)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="logo pipeline", description="Collect (if absent), fit the world model, fit "
                            "BC / MACQL / LOGO+MACQL, evaluate, and write results.json (see docs/policy.md).")
    parser.add_argument("--config", action=ActionConfigFile, help="pipeline YAML, e.g. configs/quickstart.yaml")
    parser.add_function_arguments(run_pipeline, fail_untyped=True)
    return parser


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    cfg = parser.parse_args(args)
    # the stages run LightningCLI with explicit args from inside this command: keep its chatter out of the table
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    init = parser.instantiate_classes(cfg)
    run_pipeline(**{k: v for k, v in init.items() if k != "config"})
    return 0
