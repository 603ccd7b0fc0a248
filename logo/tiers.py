"""``logo tiers``: learned behaviour datasets like the literature's, for one scenario, in one incremental command.

1. **train**: ``logo fit`` the behaviour config (an online learner, ``OnlineMAPPO`` with ``RolloutDataModule`` or
   ``OnlineTD3`` with ``OnlineEnvDataModule``, and ``ReturnSnapshots``), unless its snapshot index already names
   a final policy; an interrupted run resumes from its ``last.ckpt``;
2. **references**: the return of uniformly random legal actions, or uniform actions in the bounds
   (``references.json``);
3. **expert**: ``episodes`` episodes (and at least ``min_transitions`` transitions) of the final policy, acting as
   it acted while learning (MAPPO's sampled actions, TD3's actor plus its exploration noise), or with
   ``expert_acting: greedy`` its greedy actions (its mode, as ``logo evaluate`` plays it);
4. **medium**: ``episodes`` episodes of the first snapshot whose evaluation return reached
   ``medium_fraction`` (0.5 by default, the same for every scenario) times the expert tier's mean return;
5. **medium-replay**: every episode the learner played until that snapshot, in the order played;
6. **mixed**: the medium and expert tiers in equal parts (``logo data merge``).

Each step is skipped when its output exists and was made from the same behaviour run; an output made
from another run is an error naming it. Every dataset records where it came from in its ``provenance``
attribute (``logo data info`` prints it), and ``tiers.json`` in ``out`` tabulates them.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser

from logo import __version__
from logo.collect import collection_seed
from logo.data.merge import merge_datasets
from logo.data.writer import DatasetWriter
from logo.envs import make_env
from logo.envs.base import MultiAgentEnv, Policy
from logo.envs.episodes import run_episodes
from logo.envs.policies import ModulePolicy, RandomPolicy
from logo.errors import LogoError
from logo.online.behaviour import SampledModulePolicy
from logo.online.rollouts import export_played, summarize
from logo.online.snapshots import read_snapshot_index
from logo.provenance import git_revision, write_json

TIERS = ("expert", "medium", "medium-replay", "mixed")
GREEDY_NOTE = "greedy actions (the policy's mode, as `logo evaluate` plays it)"
REFERENCE_SEED = 7  # seed of the random-reference episodes (collection seeds, apart from the tiers')


class BehaviourRun:
    """Where a behaviour config writes: its root folder, checkpoints, snapshots and journal, read from its YAML."""

    def __init__(self, configs: list[str]):
        if not configs:
            raise LogoError("behaviour: expected at least one behaviour config (YAML of OnlineMAPPO or OnlineTD3)")
        merged: dict[str, Any] = {}
        for config in configs:
            path = Path(config)
            if not path.is_file():
                raise LogoError(f"behaviour: {config}: no such file")
            _merge(merged, yaml.safe_load(path.read_text()) or {})
        trainer, data = merged.get("trainer") or {}, (merged.get("data") or {}).get("init_args") or {}
        if not trainer.get("default_root_dir"):
            raise LogoError(f"behaviour: {configs[-1]} sets no trainer.default_root_dir; the tiers need a fixed "
                            "run folder to find the run's snapshots and to resume it")
        self.configs = list(configs)
        self.root = Path(trainer["default_root_dir"])
        dirpaths = [c.get("init_args", {}).get("dirpath") for c in trainer.get("callbacks") or []
                    if str(c.get("class_path", "")).endswith("ModelCheckpoint")]
        self.checkpoints = Path(next((d for d in dirpaths if d), self.root / "checkpoints"))
        if not any(str(c.get("class_path", "")).endswith("ReturnSnapshots") for c in trainer.get("callbacks") or []):
            raise LogoError(f"behaviour: {configs} have no ReturnSnapshots among trainer.callbacks; the tiers pick "
                            "the medium policy from its snapshots (ReplayExport alone is not enough)")
        self.snapshots = self.root / "snapshots"
        self.journal = Path(data.get("journal") or self.root / "played")
        self.family, self.scenario = data.get("env"), data.get("scenario")
        self.env_options = dict(data.get("env_options") or {})
        self.seed = int(data.get("seed", 0))
        if not self.family or not self.scenario:
            raise LogoError(f"behaviour: {configs[-1]}: data.init_args needs env and scenario (RolloutDataModule or "
                            "OnlineEnvDataModule)")

    def index(self) -> dict[str, Any]:
        return read_snapshot_index(self.snapshots)

    def train(self) -> dict[str, Any]:
        """The final snapshot of the run: trained now (resumed from ``last.ckpt`` if there is one) or earlier."""
        final = self.index().get("final")
        if final is not None:
            print(f"[tiers] train: {self.snapshots / 'index.json'} names a final policy: skipped", flush=True)
            return final
        from logo.cli import LogoCLI

        args = ["fit"] + [a for config in self.configs for a in ("--config", config)]
        last = self.checkpoints / "last.ckpt"
        if last.is_file():
            print(f"[tiers] train: resuming the interrupted run from {last}", flush=True)
            args += ["--ckpt_path", str(last)]
        else:
            print(f"[tiers] train: logo {' '.join(args)}", flush=True)
        LogoCLI(args=args)
        final = self.index().get("final")
        if final is None:
            raise LogoError(f"behaviour: the fit of {self.configs} wrote no final snapshot to {self.snapshots}; "
                            "keep ReturnSnapshots in the config's trainer.callbacks")
        return final


def _merge(base: dict, update: dict) -> None:
    """Stack ``update`` onto ``base`` as repeated ``--config`` does for these keys (dicts merged, lists replaced)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def record(env: MultiAgentEnv, policy: Policy, out: Path, spec_kwargs: dict[str, Any], episodes: int, seed: int,
           provenance: dict[str, Any], min_transitions: int | None = None) -> dict[str, Any]:
    """Write ``episodes`` episodes of ``policy`` (collection seeds of ``seed``) as a dataset, then batches of
    ``env.num_envs`` more (the next seeds) until it holds ``min_transitions`` transitions; returns its summary."""
    from logo.data.schema import DatasetSpec

    policy.seed(seed)
    returns, wins, transitions = [], [], 0
    writer = DatasetWriter(out, DatasetSpec.from_env(env.spec, **spec_kwargs))
    with writer:
        writer.set_obs_mask(env.spec.obs_mask)
        while len(returns) < episodes or transitions < (min_transitions or 0):
            first = len(returns)
            more = episodes if first == 0 else env.num_envs
            for episode in run_episodes(env, policy, [collection_seed(seed, k) for k in range(first, first + more)]):
                writer.add_episode(**episode.writer_kwargs())
                returns.append(episode.ret)
                wins.append(episode.won)
                transitions += episode.length
        summary = summarize(np.asarray(returns), np.asarray(wins) if env.spec.has_win else None, transitions)
        writer.close(extra_attrs={"provenance": {**provenance, **summary}})
    return summary


def existing(path: Path, final_checkpoint: str, env_steps: int, acting: str | None = None) -> dict[str, Any] | None:
    """The provenance of a tier already at ``path`` if it was made from this behaviour run (and, where ``acting``
    is given, played that way); None if absent."""
    from logo.data.validate import open_dataset

    if not path.exists():
        return None
    group, _ = open_dataset(path)
    made = dict(group.attrs.get("provenance") or {})
    if made.get("run_final_checkpoint") != final_checkpoint or made.get("run_env_steps") != env_steps:
        raise LogoError(f"out: {path} already exists and was not made from this behaviour run (it names "
                        f"{made.get('run_final_checkpoint')!r} at {made.get('run_env_steps')} env steps, this run "
                        f"{final_checkpoint!r} at {env_steps}); move it away or pick another out folder")
    if acting is not None and made.get("acting", acting) != acting:  # (tiers made before 'acting' was recorded pass)
        raise LogoError(f"expert_acting: {path} already exists and was played with {made.get('acting')!r}, not "
                        f"{acting!r}; move it away (and the tiers after it) or pick another out folder")
    print(f"[tiers] {path.name}: exists (same behaviour run): skipped", flush=True)
    return made


def pick_medium(index: dict[str, Any], target: float, fraction: float, final: dict[str, Any]) -> dict[str, Any]:
    """The earliest snapshot whose evaluation return reached ``target``; a LogoError says what was reached if none."""
    reached = sorted((s for s in index.get("snapshots", []) if s["eval_return"] >= target),
                     key=lambda s: (s["iteration"], -s["threshold"]))
    if not reached:
        got = [(s["threshold"], round(s["eval_return"], 3)) for s in index.get("snapshots", [])]
        raise LogoError(f"medium_fraction: no snapshot reached {fraction:g} x the expert's return = {target:.3f} by "
                        f"the end of the behaviour budget ({final['env_steps']} env steps); snapshots (threshold, "
                        f"eval return): {got}, never reached: {index.get('unreached')}. Add ReturnSnapshots thresholds "
                        f"at or below {target:.3f} and retrain in a new run folder; what was made is kept")
    return reached[0]


def check_ordered(medium_row: dict[str, Any], expert_row: dict[str, Any], medium: dict[str, Any],
                  final: dict[str, Any], medium_path: Path) -> None:
    """A LogoError when the medium tier returns at least as much as the expert tier: an unstable learner whose last
    policy is worse than an earlier snapshot gives tiers that are not ordered (what was made is kept)."""
    got, best = medium_row["return_mean"], expert_row["return_mean"]
    if got >= best:
        raise LogoError(f"medium: the medium tier ({medium['checkpoint']}, eval return {medium['eval_return']:.3f} at "
                        f"{medium['env_steps']} env steps) returns {got:.3f}, not below the expert tier's {best:.3f} "
                        f"(the final policy at {final['env_steps']} env steps): the behaviour run's last policy is "
                        f"worse than an earlier one, so the tiers would not be ordered. Train longer "
                        f"(data.total_steps) in a new run folder; kept {medium_path} and the expert tier")


def build_tiers(behaviour: list[str], out: str, medium_fraction: float = 0.5, episodes: int = 1000,
                num_envs: int = 64, seed: int = 0, reference_episodes: int = 1000,
                min_expert_win_rate: float | None = None, min_transitions: int | None = None,
                require_ordered: bool = True,
                expert_acting: Literal["behaviour", "greedy"] = "behaviour") -> dict[str, Any]:
    """Train the behaviour policy, then write the four learned tiers and the reference returns (module docstring).

    Args:
        behaviour: the behaviour config(s) of ``logo fit``, stacked in order (OnlineMAPPO with RolloutDataModule
            or OnlineTD3 with OnlineEnvDataModule, ReturnSnapshots, a fixed trainer.default_root_dir).
        out: folder of the tiers: ``expert.zarr``, ``medium.zarr``, ``medium-replay.zarr``, ``mixed.zarr``.
        medium_fraction: the medium snapshot is the first whose evaluation return reached this fraction of the
            expert tier's mean return.
        episodes: episodes of the expert and medium tiers (mixed is both, so twice as many).
        num_envs: environment copies stepped together while recording.
        seed: seed of the recorded episodes' env seeds and of the policies' sampling.
        reference_episodes: episodes of uniformly random legal actions for the random reference return.
        min_expert_win_rate: fail (keeping what was made) when the expert tier's win rate is lower.
        min_transitions: the expert and medium tiers also hold at least this many transitions: after ``episodes``
            episodes, batches of ``num_envs`` more are recorded until they do (MaMuJoCo: 100000; null: no bar).
        require_ordered: fail (keeping what was made) when the medium tier's mean return is not below the expert
            tier's, as happens when an unstable learner's last policy is worse than an earlier snapshot (false:
            make all four tiers anyway, e.g. for tiny test runs whose policies barely differ).
        expert_acting: how the final policy plays the expert tier: ``behaviour``, as it acted while learning
            (MAPPO's sampled actions, TD3's actor plus its exploration noise), or ``greedy``, its greedy actions.
            The medium tier is always played as while learning, and medium-replay is what was played.
    """
    if expert_acting not in ("behaviour", "greedy"):
        raise LogoError(f"expert_acting: expected 'behaviour' or 'greedy', got {expert_acting!r}")
    if not 0.0 < medium_fraction < 1.0:
        raise LogoError(f"medium_fraction: expected a fraction in (0, 1), got {medium_fraction}")
    for name, value in (("episodes", episodes), ("num_envs", num_envs), ("reference_episodes", reference_episodes),
                        ("min_transitions", 1 if min_transitions is None else min_transitions)):
        if value < 1:
            raise LogoError(f"{name}: expected a positive integer, got {value}")
    started = time.perf_counter()
    run = BehaviourRun(behaviour)
    env = make_env(run.family, run.scenario, num_envs=num_envs, **run.env_options)  # an unknown map fails here
    out_dir = Path(out)
    command = f"logo tiers --behaviour {shlex.quote(json.dumps(list(behaviour)))} --out {out}"
    try:
        final = run.train()
        timings = {"train": time.perf_counter() - started}
        references = _references(env, out_dir, reference_episodes)
        ckpt, steps = final["checkpoint"], final["env_steps"]
        final_module = _load(ckpt)
        common = {"kind": "learned", "behaviour_class": type(final_module).__name__, "run_final_checkpoint": ckpt,
                  "run_env_steps": steps, "seed": run.seed, "collection_seed": seed,
                  "medium_fraction": medium_fraction, "min_transitions": min_transitions, "command": command,
                  "logo_version": __version__, "git_revision": git_revision()}
        spec_extra = {"env_options": run.env_options}
        rows: dict[str, dict[str, Any]] = {}

        def tier(name: str) -> Path:
            return out_dir / f"{name}.zarr"

        clock = time.perf_counter()
        greedy = expert_acting == "greedy"
        rows["expert"] = existing(tier("expert"), ckpt, steps,
                                  acting=GREEDY_NOTE if greedy else final_module.behaviour_note()) or _record_snapshot(
            env, tier("expert"), "expert", final, episodes, seed, spec_extra, common, threshold=None,
            references=None, min_transitions=min_transitions, greedy=greedy)
        won = rows["expert"].get("win_rate")
        if min_expert_win_rate is not None and (won or 0.0) < min_expert_win_rate:
            raise LogoError(f"min_expert_win_rate: the final policy of the behaviour run ({final['env_steps']} env "
                            f"steps, its whole budget) wins {won} of the expert tier's episodes, below "
                            f"{min_expert_win_rate}; kept {run.root} and {tier('expert')}. Raise data.total_steps "
                            "and train in a new run folder")
        expert_return = rows["expert"]["return_mean"]
        target = medium_fraction * expert_return
        reference = {"random": references["random"], "expert": expert_return}
        medium = pick_medium(run.index(), target, medium_fraction, final)
        at_medium = {"medium_target_return": target}
        rows["medium"] = existing(tier("medium"), ckpt, steps) or _record_snapshot(
            env, tier("medium"), "medium", medium, episodes, seed, spec_extra, {**common, **at_medium},
            threshold=medium["threshold"], references=reference, min_transitions=min_transitions)
        _set_reference(tier("expert"), reference)
        timings["expert+medium"] = time.perf_counter() - clock
        if require_ordered:
            check_ordered(rows["medium"], rows["expert"], medium, final, tier("medium"))

        clock = time.perf_counter()
        rows["medium-replay"] = existing(tier("medium-replay"), ckpt, steps) or _medium_replay(
            run, env, tier("medium-replay"), medium, {**common, **at_medium}, reference)
        rows["mixed"] = existing(tier("mixed"), ckpt, steps) or _mixed(
            tier("medium"), tier("expert"), tier("mixed"),
            {**common, **at_medium, "behaviour_checkpoint": [medium["checkpoint"], ckpt],
             "training_env_steps": [medium["env_steps"], steps], "threshold": medium["threshold"]}, rows)
        timings["medium-replay+mixed"] = time.perf_counter() - clock
    finally:
        env.close()
    table = {"scenario": f"{run.family}/{run.scenario}", "command": command, "reference_returns": reference,
             "medium_fraction": medium_fraction, "expert_acting": expert_acting, "behaviour_checkpoint": ckpt,
             "training_env_steps": steps,
             "tiers": {name: {k: rows[name].get(k) for k in ("episodes", "transitions", "return_mean",
                                                             "return_std", "win_rate")} for name in TIERS},
             "seconds": {k: round(v, 1) for k, v in timings.items()},
             "total_seconds": round(time.perf_counter() - started, 1)}
    write_json(out_dir / "tiers.json", table)
    print(format_table(table), flush=True)
    return table


def _references(env: MultiAgentEnv, out_dir: Path, episodes: int) -> dict[str, float]:
    """The random reference return, measured once and kept in ``references.json``."""
    path = out_dir / "references.json"
    if path.is_file():
        return json.loads(path.read_text())
    seeds = [collection_seed(REFERENCE_SEED, k) for k in range(episodes)]
    returns = [e.ret for e in run_episodes(env, RandomPolicy(env.spec, REFERENCE_SEED), seeds, record=False)]
    references = {"random": float(np.mean(returns)), "random_episodes": episodes}
    write_json(path, references)
    print(f"[tiers] random reference return {references['random']:.3f} over {episodes} episodes", flush=True)
    return references


def _load(checkpoint: str) -> Any:
    from logo.policy.checkpoint import load_policy

    return load_policy(checkpoint)


def _record_snapshot(env: MultiAgentEnv, out: Path, quality: str, snapshot: dict[str, Any], episodes: int,
                     seed: int, spec_extra: dict[str, Any], provenance: dict[str, Any], threshold: float | None,
                     references: dict[str, float] | None, min_transitions: int | None,
                     greedy: bool = False) -> dict[str, Any]:
    module = _load(snapshot["checkpoint"])
    acting = GREEDY_NOTE if greedy else module.behaviour_note()
    how = "acting greedily" if greedy else "acting as while learning"
    behaviour = (f"learned: {type(module).__name__} snapshot {snapshot['checkpoint']} ({snapshot['env_steps']} "
                 f"training env steps, eval return {snapshot['eval_return']:.3f}), {how}: {acting}")
    at_least = f" (and at least {min_transitions} transitions)" if min_transitions else ""
    print(f"[tiers] {out.name}: {episodes} episodes{at_least} of {snapshot['checkpoint']}", flush=True)
    extra = {**spec_extra, "reference_returns": references}
    policy = ModulePolicy(module, env.spec) if greedy else SampledModulePolicy(module, env.spec)
    return record(env, policy, out,
                  {"quality": quality, "behaviour": behaviour, "source": "logo tiers", "extra": extra},
                  episodes, seed, {**provenance, "tier": quality, **played_by(snapshot), "threshold": threshold,
                                   "acting": acting}, min_transitions=min_transitions)


def played_by(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The provenance of the policy that played a tier: its checkpoint, training steps and evaluation."""
    return {"behaviour_checkpoint": snapshot["checkpoint"], "training_env_steps": snapshot["env_steps"],
            "training_iterations": snapshot["iteration"], "training_episodes": snapshot["episodes_played"],
            "eval_return": snapshot["eval_return"], "eval_win_rate": snapshot["eval_win_rate"]}


def _set_reference(path: Path, reference: dict[str, float]) -> None:
    """The expert tier is written before the expert return is known: add the reference returns afterwards (once)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    extra = dict(group.attrs.get("extra") or {})
    if extra.get("reference_returns") != reference:
        extra["reference_returns"] = reference
        group.attrs["extra"] = extra


def _medium_replay(run: BehaviourRun, env: MultiAgentEnv, out: Path, medium: dict[str, Any],
                   provenance: dict[str, Any], reference: dict[str, float]) -> dict[str, Any]:
    from logo.data.schema import DatasetSpec

    print(f"[tiers] {out.name}: the {medium['episodes_played']} episodes played until {medium['checkpoint']}",
          flush=True)
    behaviour = (f"learned: every episode {provenance['behaviour_class']} played while training, from env step 0 "
                 f"until its medium snapshot {medium['checkpoint']} ({medium['env_steps']} env steps)")
    spec = DatasetSpec.from_env(env.spec, quality="medium-replay", behaviour=behaviour, source="logo tiers",
                                extra={"env_options": run.env_options, "reference_returns": reference})
    files = medium.get("journal_files", medium["iteration"])  # index.json before journal_files: one per iteration
    _, summary = export_played(run.journal, files, out, spec, obs_mask=env.spec.obs_mask,
                               extra_attrs={"provenance": {**provenance, "tier": "medium-replay",
                                                           **played_by(medium), "threshold": medium["threshold"],
                                                           "training_env_steps": medium["env_steps"]}})
    return summary


def _mixed(medium: Path, expert: Path, out: Path, provenance: dict[str, Any],
           rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    print(f"[tiers] {out.name}: {medium.name} + {expert.name}", flush=True)
    parts = (rows["medium"], rows["expert"])
    n = sum(p["episodes"] for p in parts)
    summary = {"episodes": n, "transitions": sum(p["transitions"] for p in parts),
               "return_mean": sum(p["return_mean"] * p["episodes"] for p in parts) / n}
    second = sum((p["return_std"] ** 2 + p["return_mean"] ** 2) * p["episodes"] for p in parts) / n
    summary["return_std"] = float(np.sqrt(max(second - summary["return_mean"] ** 2, 0.0)))
    if all(p.get("win_rate") is not None for p in parts):
        summary["win_rate"] = sum(p["win_rate"] * p["episodes"] for p in parts) / n
    merge_datasets([str(medium), str(expert)], str(out), "mixed",
                   extra_attrs={"provenance": {**provenance, "tier": "mixed", **summary}})
    return summary


def format_table(table: dict[str, Any]) -> str:
    lines = [f"{table['scenario']}: learned tiers (medium = first snapshot >= {table['medium_fraction']:g} x expert "
             f"return; reference returns {table['reference_returns']})",
             f"{'tier':<14}{'episodes':>9}{'transitions':>13}{'return':>18}{'win rate':>10}"]
    for name, row in table["tiers"].items():
        win = "-" if row.get("win_rate") is None else f"{row['win_rate']:.2f}"
        lines.append(f"{name:<14}{row['episodes']:>9}{row['transitions']:>13}"
                     f"{row['return_mean']:>10.3f} ± {row['return_std']:.3f}{win:>10}")
    lines.append(f"total {table['total_seconds']:.0f} s; {table['command']}")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="logo tiers", description="Train a behaviour policy and write the learned expert, "
                            "medium, medium-replay and mixed datasets of its scenario; reruns skip what exists and "
                            "resume an interrupted training (see docs/environments.md).")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of the options below")
    parser.add_function_arguments(build_tiers, fail_untyped=True)
    return parser


def main(args: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(args)
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    build_tiers(**{k: v for k, v in cfg.items() if k != "config"})
    return 0
