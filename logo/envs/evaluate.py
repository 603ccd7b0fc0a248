"""Evaluate a policy in its real environment over fixed seeds: returns, win rate, normalised score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logo.envs import make_env
from logo.envs.base import EnvSpec, MultiAgentEnv, Policy, TimeStep
from logo.envs.episodes import discounted_rtg, run_episodes
from logo.errors import LogoError


def normalized_score(ret: float, random_return: float, expert_return: float) -> float:
    """``100 * (R - R_random) / (R_expert - R_random)``: 0 is random behaviour, 100 the expert's."""
    if expert_return == random_return:
        raise LogoError(f"reference returns: expert ({expert_return}) and random ({random_return}) must differ")
    return 100.0 * (ret - random_return) / (expert_return - random_return)


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """The env seeds of an evaluation: ``seed, seed + 1, ...`` (collection uses hashed seeds, so they differ)."""
    if episodes < 1:
        raise LogoError(f"episodes: expected at least 1 evaluation episode, got {episodes}")
    return list(range(seed, seed + episodes))


@dataclass
class EvaluationResult:
    """Per-episode outcomes of one evaluation and, if known, the reference returns used to normalise."""

    seeds: list[int]
    returns: np.ndarray  # [episodes]
    lengths: np.ndarray  # [episodes]
    wins: np.ndarray | None = None  # [episodes] bool, where the env has a win condition
    reference: dict[str, float] | None = field(default=None)  # {"random": R_random, "expert": R_expert}
    extra: dict[str, float] = field(default_factory=dict)  # e.g. a planner's cost: plan_ms_per_step, ...

    def metrics(self) -> dict[str, float]:
        """mean/std/min/max return, mean length, win rate and normalised score (when available), and ``extra``."""
        out = {"return_mean": float(self.returns.mean()), "return_std": float(self.returns.std()),
               "return_min": float(self.returns.min()), "return_max": float(self.returns.max()),
               "length_mean": float(self.lengths.mean()), "episodes": float(len(self.returns))}
        if self.wins is not None:
            out["win_rate"] = float(self.wins.mean())
        if self.reference:
            out["normalized_score"] = normalized_score(out["return_mean"], self.reference["random"],
                                                       self.reference["expert"])
        return {**out, **self.extra}


class _ValueRecorder:
    """A policy that also records ``value(ts, actions)`` [B] of the actions it takes, step by step."""

    def __init__(self, policy: Policy, value: Callable[[TimeStep, np.ndarray], np.ndarray]):
        self.policy, self.value, self.steps = policy, value, []

    def seed(self, seed: int) -> None:
        self.policy.seed(seed)

    def act(self, ts: TimeStep) -> np.ndarray:
        actions = self.policy.act(ts)
        self.steps.append(np.asarray(self.value(ts, actions), np.float64).reshape(-1))
        return actions

    def take(self) -> np.ndarray:
        """[T, B] values of the steps since the last take."""
        out, self.steps = np.stack(self.steps), []
        return out


def evaluate_policy(env: MultiAgentEnv, policy: Policy, episodes: int = 10, seed: int = 0,
                    reference: dict[str, float] | None = None,
                    value: Callable[[TimeStep, np.ndarray], np.ndarray] | None = None, gamma: float = 0.99,
                    reward_scale: float = 1.0) -> EvaluationResult:
    """Run ``episodes`` episodes on seeds ``seed..seed+episodes-1`` (``env.num_envs`` at a time).

    The policy is reseeded with ``seed`` first, so the same seeds give the same numbers. A policy that reports
    its own numbers (``stats() -> dict``, e.g. a planner's cost) has them in the result's ``extra``.

    With ``value`` (e.g. a critic's ``Q_tot`` of the actions taken, ``value(ts, actions) -> [B]``) the result's
    ``extra`` also holds ``q_policy``, the mean value over every step the policy played, and ``rtg_policy``, the
    mean over the same steps of the discounted return-to-go that actually followed (``reward_scale`` times the
    reward, ``gamma``; within the episode, so at a time limit it is cut where a bootstrapped value is not): what
    the critic's value of its own greedy policy should be, against what it is.
    """
    seeds = evaluation_seeds(seed, episodes)
    recorder = None if value is None else _ValueRecorder(policy, value)
    policy.seed(seed)
    returns, lengths, wins = [], [], []
    q_sum = rtg_sum = 0.0
    steps = 0
    chunk: np.ndarray | None = None
    for k, episode in enumerate(run_episodes(env, recorder or policy, seeds, record=False)):
        returns.append(episode.ret)
        lengths.append(episode.length)
        wins.append(episode.won)
        if recorder is not None:
            if k % env.num_envs == 0:  # the first episode of a batch: all of that batch's steps are recorded
                chunk = recorder.take()
            q_sum += float(chunk[:episode.length, k % env.num_envs].sum())
            rtg_sum += float(discounted_rtg(reward_scale * episode.rewards.astype(np.float64), gamma).sum())
            steps += episode.length
    has_win = all(w is not None for w in wins)
    extra = policy.stats() if callable(getattr(policy, "stats", None)) else {}
    if recorder is not None:
        extra = {**extra, "q_policy": q_sum / steps, "rtg_policy": rtg_sum / steps}
    return EvaluationResult(seeds=seeds, returns=np.asarray(returns), lengths=np.asarray(lengths),
                            wins=np.asarray(wins, bool) if has_win else None, reference=reference, extra=extra)


def dataset_env_target(spec) -> tuple[str, str, dict, dict[str, float] | None]:
    """(family, scenario, env_options, reference returns) of the environment a dataset was recorded in.

    ``spec`` is the dataset's ``DatasetSpec``; ``logo collect`` stores the env options and, where
    measured, the reference returns in its ``extra``. Datasets without them fall back to the
    built-in table (``logo.envs.references``).
    """
    from logo.envs import FAMILIES
    from logo.envs.references import reference_returns

    if spec.env_family not in FAMILIES:
        raise LogoError(f"dataset env_family {spec.env_family!r} has no environment adapter to evaluate in "
                        f"(adapters: {', '.join(sorted(FAMILIES))}); name one with `logo evaluate --env E "
                        "--scenario S` or EnvEvaluation's env and scenario")
    options = dict(spec.extra.get("env_options") or {})
    reference = spec.extra.get("reference_returns") or reference_returns(spec.env_family, spec.scenario, options)
    return spec.env_family, spec.scenario, options, reference


def make_dataset_env(spec: Any, num_envs: int = 1, family: str | None = None, scenario: str | None = None,
                     env_options: dict[str, Any] | None = None) -> tuple[MultiAgentEnv, dict[str, float] | None]:
    """The environment a dataset was recorded in, with ``num_envs`` copies, and its reference returns.

    ``spec`` is the dataset's ``DatasetSpec`` (see :func:`dataset_env_target`). ``family``, ``scenario`` and
    ``env_options`` replace the dataset's; with both ``family`` and ``scenario`` given the spec is not read
    (it may be None) and the reference returns are None.
    """
    reference = None
    if family is None or scenario is None:
        family_d, scenario_d, options_d, reference = dataset_env_target(spec)
        family, scenario = family or family_d, scenario or scenario_d
        env_options = options_d if env_options is None else env_options
    return make_env(family, scenario, num_envs=num_envs, **(env_options or {})), reference


def evaluate_in_dataset_env(spec: Any, policies: Sequence[Callable[[EnvSpec], Policy]], episodes: int,
                            seed: int = 0, num_envs: int = 1
                            ) -> tuple[list[EvaluationResult], dict[str, float] | None]:
    """Play each policy in the environment a dataset was recorded in, on the same seeds; closes the env after.

    One environment of ``min(num_envs, episodes)`` copies (made by :func:`make_dataset_env`) plays every
    policy, in order, for ``episodes`` episodes on seeds ``seed..seed+episodes-1`` (:func:`evaluate_policy`).

    Args:
        spec: the dataset's ``DatasetSpec``.
        policies: one factory per policy, called with the environment's ``EnvSpec`` just before it plays.
        episodes: evaluation episodes per policy.
        seed: first evaluation seed.
        num_envs: environment copies stepped together (at most ``episodes``).

    Returns:
        The results, one per policy, and the dataset's reference returns (None where unknown).

    Example:
        >>> (random,), reference = evaluate_in_dataset_env(spec, [RandomPolicy], episodes=8)  # doctest: +SKIP
    """
    env, reference = make_dataset_env(spec, num_envs=min(num_envs, episodes))
    try:
        return [evaluate_policy(env, make_policy(env.spec), episodes, seed) for make_policy in policies], reference
    finally:
        env.close()
