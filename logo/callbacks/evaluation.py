"""Evaluate the policy being trained in its real environment, during ``fit`` and in ``test``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from logo.envs.base import MultiAgentEnv
from logo.envs.evaluate import EvaluationResult, evaluate_policy, make_dataset_env
from logo.envs.policies import ModulePolicy
from logo.errors import LogoError
from logo.planning import MPCOptions, MPCPlanner, load_planner_model


class EnvEvaluation(Callback):
    """Run the policy greedily (or planning around it with MPC) for ``episodes`` episodes on fixed seeds and log
    the results.

    Logged as ``{prefix}/return_mean``, ``return_std``, ``return_min``, ``return_max``, ``length_mean``,
    ``win_rate`` (where the env has one) and ``normalized_score`` (where reference returns are known:
    the arguments here, else the dataset's). Runs after every ``every_n_epochs``-th validation epoch
    of ``fit`` (so ModelCheckpoint can monitor ``eval/return_mean``) and at the end of ``test``. Under
    DDP only rank 0 plays (the weights are the same on every rank) and broadcasts its numbers, so
    every rank logs the same values (a monitor works everywhere) and the loggers write them once.

    With ``planner`` the module acts through :class:`~logo.planning.MPCPlanner` (centralised: it reads the global
    state), which plans every step in the planner's world model; its cost is logged too
    (``plan_ms_per_step``, ``model_transitions_per_s``).

    Args:
        env: environment family; default: the dataset's.
        scenario: scenario name; default: the dataset's.
        env_options: family options; default: those the dataset was collected with.
        episodes: evaluation episodes (seeds ``seed .. seed + episodes - 1``).
        num_envs: environment copies stepped together.
        seed: first evaluation seed.
        every_n_epochs: evaluate after every n-th validation epoch during fit.
        random_return: reference return of random behaviour (overrides the dataset's).
        expert_return: reference return of expert behaviour (overrides the dataset's).
        prefix: metric name prefix during fit (test logs under ``test/env_...``).
        planner: plan with MPC around the policy in ``planner.world_model`` (None: the policy acts alone).
    """

    def __init__(self, env: str | None = None, scenario: str | None = None, env_options: dict[str, Any] | None = None,
                 episodes: int = 10, num_envs: int = 1, seed: int = 0, every_n_epochs: int = 1,
                 random_return: float | None = None, expert_return: float | None = None, prefix: str = "eval",
                 planner: MPCOptions | None = None):
        if every_n_epochs < 1:
            raise LogoError(f"every_n_epochs: expected at least 1, got {every_n_epochs}")
        if (random_return is None) != (expert_return is None):
            raise LogoError("random_return and expert_return: give both reference returns or neither")
        self.env, self.scenario, self.env_options = env, scenario, env_options
        self.episodes, self.num_envs, self.seed, self.every_n_epochs = episodes, num_envs, seed, every_n_epochs
        self.reference = None if random_return is None else {"random": random_return, "expert": expert_return}
        self.prefix, self.planner = prefix, planner
        self._planner_model = None
        self._env: MultiAgentEnv | None = None
        self.last_result: EvaluationResult | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.build(getattr(trainer.datamodule, "spec", None))  # every rank: a bad env fails everywhere at once

    def build(self, spec: Any = None) -> None:
        """Make the environment, filling what the arguments leave open from a dataset's spec."""
        if self._env is not None:
            return
        if (self.env is None or self.scenario is None) and spec is None:
            raise LogoError("EnvEvaluation: give env and scenario, or use a data module with a dataset spec")
        self._env, reference = make_dataset_env(spec, self.num_envs, self.env, self.scenario, self.env_options)
        self.reference = self.reference or reference
        if self.planner is not None and self._planner_model is None:
            self._planner_model = load_planner_model(self.planner, self._env.spec)

    def evaluate(self, pl_module: LightningModule) -> EvaluationResult:
        """One evaluation of ``pl_module`` (anything with logo's ``act``), restoring its train/eval mode."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            if self.planner is None:
                policy = ModulePolicy(pl_module, self._env.spec)
            else:
                policy = MPCPlanner(pl_module, self._planner_model, self._env.spec, self.planner, seed=self.seed)
            self.last_result = evaluate_policy(self._env, policy, self.episodes, self.seed, self.reference)
        finally:
            pl_module.train(was_training)
        return self.last_result

    def _log(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> None:
        metrics = self.evaluate(pl_module).metrics() if trainer.is_global_zero else None
        if trainer.world_size > 1:
            metrics = trainer.strategy.broadcast(metrics, src=0)
        for name, value in metrics.items():
            if name != "episodes":
                pl_module.log(f"{prefix}/{name}", value, sync_dist=False)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._log(trainer, pl_module, self.prefix)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test/env")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
