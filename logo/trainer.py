"""logo's Trainer: Lightning's, plus ``evaluate`` (the ``logo evaluate`` subcommand)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from logo.errors import LogoError
from logo.planning import MPCOptions


class LogoTrainer(Trainer):
    """Lightning's Trainer with one more entry point, ``evaluate``: play the policy in its real environment.

    Every run also carries three callbacks (each a no-op where it does not apply):
    :class:`~logo.callbacks.random_state.RandomStates`, so checkpoints hold each rank's global RNG states
    and ``--ckpt_path last`` continues the interrupted run's random sequences;
    :class:`~logo.callbacks.RolloutRounds`, which runs the rollout rounds of a data module's synthetic
    source (``data.synthetic``) with the policy being trained; and
    :class:`~logo.callbacks.WorldModelDiagnostics`, so every world-model fit logs its open-loop error and
    draws its u plots.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from logo.callbacks.diagnostics import WorldModelDiagnostics
        from logo.callbacks.random_state import RandomStates
        from logo.callbacks.rollout_rounds import RolloutRounds

        for default in (WorldModelDiagnostics, RolloutRounds, RandomStates):
            if not any(isinstance(c, default) for c in self.callbacks):
                self.callbacks.insert(0, default())

    def evaluate(self, model: LightningModule, datamodule: LightningDataModule | None = None,
                 ckpt_path: str | None = None, episodes: int = 10, seed: int = 0, num_envs: int = 1,
                 env: str | None = None, scenario: str | None = None,
                 env_options: dict[str, Any] | None = None, planner: MPCOptions | None = None) -> dict[str, float]:
        """Evaluate a policy checkpoint in its real environment: returns, win rate, normalised score.

        Args:
            model: the policy module (its weights come from ``ckpt_path``).
            datamodule: its data module; the dataset's spec names the environment and reference returns.
            ckpt_path: checkpoint with the policy's weights (required unless the model is already trained).
            episodes: evaluation episodes, on seeds ``seed .. seed + episodes - 1``.
            seed: first evaluation seed.
            num_envs: environment copies stepped together.
            env: environment family; default: the dataset's.
            scenario: scenario name; default: the dataset's.
            env_options: family options; default: those the dataset was collected with.
            planner: plan with MPC around the policy in ``planner.world_model`` (centralised: reads the global
                state); None: the policy acts alone. Also reports ``plan_ms_per_step`` and ``model_transitions_per_s``.
        """
        from logo.callbacks.evaluation import EnvEvaluation

        if ckpt_path is not None:
            try:
                checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
                model.load_state_dict(checkpoint["state_dict"])
            except FileNotFoundError as exc:
                raise LogoError(f"ckpt_path: {ckpt_path}: no such file") from exc
            except (KeyError, RuntimeError) as exc:
                raise LogoError(f"ckpt_path: {ckpt_path} does not hold weights for {type(model).__name__} "
                                f"({exc})") from exc
        evaluation = EnvEvaluation(env=env, scenario=scenario, env_options=env_options, episodes=episodes,
                                   num_envs=num_envs, seed=seed, planner=planner)
        evaluation.build(getattr(datamodule, "spec", None))
        try:
            metrics = evaluation.evaluate(model.cpu()).metrics()
        finally:
            evaluation.teardown(self, model, "evaluate")
        if self.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics({f"evaluate/{k}": v for k, v in metrics.items()}, step=0)
                logger.save()
            width = max(len(k) for k in metrics)
            for name, value in metrics.items():
                print(f"{name:<{width}}  {value:.4g}")
        return metrics
