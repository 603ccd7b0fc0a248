"""``logo collect``: record a behaviour policy in a real environment as a logo dataset.

Quality tiers follow D4RL / og-marl / OMAR: ``random`` (uniform legal actions), ``expert`` (a
scripted expert or a trained checkpoint), ``medium`` (the expert degraded by per-agent
epsilon-random actions, or a medium checkpoint), ``medium-replay`` (for scripted behaviour:
epsilon annealed linearly from 1 to ``--epsilon`` over the collection, standing in for the
replay buffer of a run that learned up to medium; for trained behaviour use the replay buffer
exported by ``ReplayExport``) and ``mixed`` (``logo data merge`` of medium and expert, as in CFCQL).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from logo import __version__
from logo.data.schema import DatasetSpec
from logo.data.writer import DatasetWriter
from logo.envs import make_env, scripted_policy
from logo.envs.base import MultiAgentEnv, Policy
from logo.envs.episodes import episode_seed, run_episodes
from logo.envs.policies import EpsilonPolicy, ModulePolicy, RandomPolicy
from logo.envs.references import reference_returns
from logo.errors import LogoError

QUALITIES = ("random", "medium", "expert", "medium-replay", "mixed")


COLLECT_STREAM = 0x10C0  # episode_seed stream of logo collect


def collection_seed(seed: int, k: int) -> int:
    """Env seed of collected episode ``k``: distinct from online training's and evaluation's seeds."""
    return episode_seed(seed, k, COLLECT_STREAM)


def behaviour_policy(env: MultiAgentEnv, behaviour: str, seed: int, checkpoint: str | None = None) -> Policy:
    """The un-noised behaviour: random, the family's scripted expert, or a logo policy checkpoint."""
    if behaviour == "random":
        return RandomPolicy(env.spec, seed)
    if behaviour == "scripted":
        return scripted_policy(env, seed=seed)
    if behaviour == "checkpoint":
        if not checkpoint:
            raise LogoError("checkpoint: --behaviour checkpoint needs --checkpoint PATH to a logo policy checkpoint")
        from logo.policy.checkpoint import load_policy  # torch/lightning only when needed

        return ModulePolicy(load_policy(checkpoint), env.spec)
    raise LogoError(f"behaviour: expected one of random, scripted, checkpoint; got {behaviour!r}")


def collect(env: Literal["mpe", "mamujoco", "smax", "smac"], scenario: str,
            behaviour: Literal["random", "scripted", "checkpoint"], quality: str, out: str,
            episodes: int = 100, transitions: int | None = None, seed: int = 0, epsilon: float = 0.0,
            checkpoint: str | None = None, env_options: dict[str, Any] | None = None, num_envs: int = 1,
            overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Record episodes of a behaviour policy as a validated logo dataset and return its summary.

    Args:
        env: environment family.
        scenario: scenario name as the family names it (simple_spread_v3, HalfCheetah-2x3, 3m, ...).
        behaviour: random actions, the family's scripted expert, or a logo policy checkpoint.
        quality: dataset tier recorded in the attributes (random, medium, expert, medium-replay, mixed).
        out: target dataset folder (.zarr); written atomically.
        episodes: number of episodes (the maximum when a transition budget is given).
        transitions: optional transition budget: stop after the episode that reaches it.
        seed: seed of the episodes' env seeds and of the policy's randomness.
        epsilon: per-agent probability of a uniform random legal action at each step (medium tiers);
            for quality medium-replay, the final value of a schedule annealed linearly from 1.
        checkpoint: policy checkpoint for behaviour checkpoint.
        env_options: family-specific options, e.g. {"continuous_actions": true} for MPE.
        num_envs: environment copies stepped together.
        overwrite: replace an existing dataset at out (only once the new one is complete).
        progress: show a progress bar on stderr.
    """
    if quality not in QUALITIES:
        raise LogoError(f"quality: expected one of {', '.join(QUALITIES)}, got {quality!r}")
    if quality == "mixed":
        raise LogoError("quality mixed: collect the medium and expert tiers, then combine them with "
                        "'logo data merge MEDIUM.zarr EXPERT.zarr --out MIXED.zarr --quality mixed'")
    if episodes < 1:
        raise LogoError(f"episodes: expected at least 1, got {episodes}")
    if transitions is not None and transitions < 1:
        raise LogoError(f"transitions: expected a positive budget, got {transitions}")
    if not 0.0 <= epsilon <= 1.0:
        raise LogoError(f"epsilon: expected a probability in [0, 1], got {epsilon}")
    if behaviour == "random" and epsilon:
        raise LogoError("epsilon: random behaviour is already uniformly random; drop --epsilon or pick "
                        "--behaviour scripted/checkpoint")
    if behaviour != "checkpoint" and checkpoint:
        raise LogoError("checkpoint: only used with --behaviour checkpoint")
    if Path(out).exists() and not overwrite:
        raise LogoError(f"out: {out} already exists; pass --overwrite to replace it")
    env_options = dict(env_options or {})
    environment = make_env(env, scenario, num_envs=num_envs, **env_options)
    try:
        return _collect(environment, behaviour, quality, out, episodes, transitions, seed, epsilon, checkpoint,
                        env_options, overwrite, progress)
    finally:
        environment.close()


def _collect(environment: MultiAgentEnv, behaviour: str, quality: str, out: str, episodes: int,
             transitions: int | None, seed: int, epsilon: float, checkpoint: str | None,
             env_options: dict[str, Any], overwrite: bool, progress: bool) -> dict[str, Any]:
    spec = environment.spec
    base = behaviour_policy(environment, behaviour, seed, checkpoint)
    annealed = quality == "medium-replay" and behaviour != "random"
    policy: Policy = EpsilonPolicy(base, spec, 1.0 if annealed else epsilon, seed) if (epsilon or annealed) else base
    policy.seed(seed)
    description = _describe(behaviour, checkpoint, epsilon, annealed)
    bar = _progress_bar(progress, transitions or episodes, "transitions" if transitions else "episodes")
    returns, lengths, wins, epsilons = [], [], [], []
    n_steps, k, started = 0, 0, time.perf_counter()
    reference = reference_returns(spec.family, spec.scenario, env_options)
    # env_options and reference returns go into the spec's extra: evaluation rebuilds the env from them
    dataset_spec = DatasetSpec.from_env(spec, quality, description, "logo collect",
                                        extra={"env_options": env_options, "reference_returns": reference})
    writer = DatasetWriter(out, dataset_spec, overwrite=overwrite)
    with writer:
        writer.set_obs_mask(spec.obs_mask)
        while k < episodes and (transitions is None or n_steps < transitions):
            batch = [collection_seed(seed, k + j) for j in range(min(environment.num_envs, episodes - k))]
            if annealed:  # one epsilon per copy, from each episode's position in the collection
                policy.epsilon = _annealed(epsilon, k, len(batch), environment.num_envs, episodes, n_steps,
                                           transitions, spec.max_steps)
            batch_eps = np.broadcast_to(np.asarray(getattr(policy, "epsilon", 0.0), float), (environment.num_envs,))
            for j, episode in enumerate(run_episodes(environment, policy, batch)):
                writer.add_episode(**episode.writer_kwargs())
                returns.append(episode.ret)
                lengths.append(episode.length)
                wins.append(episode.won)
                epsilons.append(float(batch_eps[j]))
                n_steps += episode.length
                k += 1
                if bar is not None:
                    bar.update(episode.length if transitions else 1)
                if transitions is not None and n_steps >= transitions:
                    break
        seconds = time.perf_counter() - started
        returns_arr = np.asarray(returns)
        collection = {
            "behaviour": behaviour, "checkpoint": checkpoint, "epsilon": epsilon,
            "epsilon_schedule": "linear from 1.0 to epsilon over the collection" if annealed else "constant",
            "epsilon_first": epsilons[0], "epsilon_last": epsilons[-1],
            "seed": seed, "episodes": k, "transitions": n_steps, "num_envs": environment.num_envs,
            "env_options": env_options, "return_mean": float(returns_arr.mean()),
            "return_std": float(returns_arr.std()), "return_min": float(returns_arr.min()),
            "return_max": float(returns_arr.max()), "length_mean": float(np.mean(lengths)),
            "seconds": round(seconds, 3), "transitions_per_second": round(n_steps / max(seconds, 1e-9), 1),
            "logo_version": __version__,
        }
        if all(w is not None for w in wins):
            collection["win_rate"] = float(np.mean(wins))
        # kind: scripted tiers are not the literature's learned ones (those are made by `logo tiers`, kind learned)
        path = writer.close(extra_attrs={"collection": collection, "provenance": {"kind": behaviour, "tier": quality}})
    if bar is not None:
        bar.close()
    return {"path": str(path), **collection}


def _annealed(final: float, k: int, count: int, num_envs: int, episodes: int, n_steps: int,
              transitions: int | None, max_steps: int) -> np.ndarray:
    """Epsilon of episodes k..k+count-1 (padded to num_envs): linear from 1 at the start to ``final`` at the end
    of the budget, progress being the larger of the episode and (estimated) transition fractions."""
    j = np.arange(num_envs, dtype=np.float64).clip(max=count - 1)
    progress = (k + j) / max(episodes - 1, 1)
    if transitions is not None:
        mean_length = n_steps / k if k else max_steps
        progress = np.maximum(progress, (n_steps + j * mean_length) / transitions)
    return 1.0 + (final - 1.0) * progress.clip(0.0, 1.0)


def _describe(behaviour: str, checkpoint: str | None, epsilon: float, annealed: bool) -> str:
    text = {"random": "uniform random legal actions",
            "scripted": "scripted expert (hand-written rules, not a learned policy: a scripted tier)",
            "checkpoint": f"policy checkpoint {checkpoint}"}[behaviour]
    if annealed:
        return f"{text}, per-agent epsilon-random actions annealed linearly from 1.0 to {epsilon}"
    if epsilon:
        return f"{text}, per-agent epsilon-random actions with epsilon={epsilon}"
    return text


def _progress_bar(enabled: bool, total: int, unit: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit[:-1], desc="collect", file=sys.stderr, dynamic_ncols=True)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="logo collect", description="Record a behaviour policy in a real environment "
                            "as a logo dataset (see docs/environments.md).")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of the options below")
    parser.add_function_arguments(collect, fail_untyped=True, skip={"overwrite", "progress"})
    parser.add_argument("--overwrite", action=ActionYesNo, default=False,
                        help="replace an existing dataset at --out (only once the new one is complete)")
    parser.add_argument("--progress", action=ActionYesNo, default=True, help="show a progress bar on stderr")
    return parser


def main(args: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(args)
    kwargs = {k: v for k, v in cfg.items() if k != "config"}
    summary = collect(**kwargs)
    parts = [f"{summary['episodes']} episodes", f"{summary['transitions']} transitions",
             f"return {summary['return_mean']:.2f} ± {summary['return_std']:.2f}"]
    if "win_rate" in summary:
        parts.append(f"win rate {summary['win_rate']:.2f}")
    parts.append(f"{summary['transitions_per_second']:.0f} transitions/s")
    print(f"wrote {summary['path']}: " + ", ".join(parts))
    return 0
