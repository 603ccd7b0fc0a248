"""Evaluate the policy being trained in its real environment, during ``fit`` and in ``test``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from logo.callbacks.learning_curve import LearningCurve
from logo.envs.base import MultiAgentEnv
from logo.envs.evaluate import EvaluationResult, evaluate_policy, make_dataset_env
from logo.envs.policies import ModulePolicy
from logo.errors import LogoError
from logo.planning import MPCOptions, MPCPlanner, load_planner_model


class EnvEvaluation(Callback):
    """Run the policy greedily (or planning around it with MPC) for ``episodes`` episodes on fixed seeds, log the
    results and record the learning curve.

    Logged as ``{prefix}/return_mean``, ``return_std``, ``return_min``, ``return_max``, ``length_mean``,
    ``win_rate`` (where the env has one) and ``normalized_score`` (where reference returns are known:
    the arguments here, else the dataset's). A module with a critic (``q_tot``, e.g. MACQL) also gets
    ``q_policy``, its mean ``Q_tot`` of the actions it took, and ``rtg_policy``, the mean discounted return that
    followed them (``reward_scale`` times the reward, its ``gamma``; see :func:`~logo.envs.evaluate.evaluate_policy`).
    During ``fit`` it runs either after every ``every_n_epochs``-th
    validation epoch (the default, every epoch; ModelCheckpoint can monitor ``eval/return_mean``) or after
    every ``every_n_steps``-th optimizer update, whatever the epoch length (the loggers get the numbers at
    the step of that update, and ``trainer.callback_metrics`` holds them for monitors). It also runs at the
    end of ``test``.

    Every evaluation of a fit is a point of the run's learning curve (:class:`LearningCurve`): the numbers
    above next to the mean of each ``train/*`` metric logged since the previous point (``train/q_data``,
    ``train/rtg_real``, ``train/synthetic_share``, ...). The curve is written again after each point, whole,
    to ``curve_file`` in the run's log folder (``trainer.log_dir``), travels in checkpoints so a resumed fit
    continues it, and is read and plotted by ``logo curves``.

    Under DDP only rank 0 plays (the weights are the same on every rank) and broadcasts its numbers, so
    every rank logs the same values (a monitor works everywhere); the loggers and the curve file are
    written once, by rank 0, whose own training metrics the curve averages.

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
        every_n_epochs: evaluate after every n-th validation epoch during fit (default 1 unless
            ``every_n_steps`` is given; give one of the two).
        every_n_steps: evaluate after every n-th optimizer update during fit instead.
        random_return: reference return of random behaviour (overrides the dataset's).
        expert_return: reference return of expert behaviour (overrides the dataset's).
        prefix: metric name prefix during fit (test logs under ``test/env_...``).
        curve_file: file name of the learning curve in the run's log folder; null: keep it in memory only
            (``callback.curve``).
        label: the run's name in curve plots (default: the model's class name).
        planner: plan with MPC around the policy in ``planner.world_model`` (None: the policy acts alone).
    """

    def __init__(self, env: str | None = None, scenario: str | None = None, env_options: dict[str, Any] | None = None,
                 episodes: int = 10, num_envs: int = 1, seed: int = 0, every_n_epochs: int | None = None,
                 every_n_steps: int | None = None, random_return: float | None = None,
                 expert_return: float | None = None, prefix: str = "eval", curve_file: str | None = "curve.json",
                 label: str | None = None, planner: MPCOptions | None = None):
        if every_n_epochs is not None and every_n_steps is not None:
            raise LogoError(f"EnvEvaluation: give every_n_epochs ({every_n_epochs}) or every_n_steps "
                            f"({every_n_steps}), not both")
        for name, value in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps)):
            if value is not None and value < 1:
                raise LogoError(f"EnvEvaluation: {name}: expected at least 1, got {value}")
        if (random_return is None) != (expert_return is None):
            raise LogoError("random_return and expert_return: give both reference returns or neither")
        if curve_file is not None and (not curve_file or Path(curve_file).name != curve_file):
            raise LogoError(f"EnvEvaluation: curve_file: expected a file name such as curve.json (it goes in the "
                            f"run's log folder), got {curve_file!r}")
        self.env, self.scenario, self.env_options = env, scenario, env_options
        self.episodes, self.num_envs, self.seed = episodes, num_envs, seed
        self.every_n_steps = every_n_steps
        self.every_n_epochs = every_n_epochs if every_n_epochs is not None or every_n_steps is not None else 1
        self.reference = None if random_return is None else {"random": random_return, "expert": expert_return}
        self.prefix, self.curve_file, self.label, self.planner = prefix, curve_file, label, planner
        self._planner_model = None
        self._env: MultiAgentEnv | None = None
        self.last_result: EvaluationResult | None = None
        self.curve = LearningCurve()
        self._curve_path: Path | None = None
        self._observed_step = -1
        self._seconds = 0.0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.build(getattr(trainer.datamodule, "spec", None))  # every rank: a bad env fails everywhere at once
        if stage != "fit":
            return
        seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything
        self.curve = LearningCurve({
            "label": self.label or type(pl_module).__name__, "model": type(pl_module).__name__,
            "seed": int(seed) if seed is not None else None,
            "dataset": str(getattr(trainer.datamodule, "path", "")) or None,
            "every_n_steps": self.every_n_steps, "every_n_epochs": self.every_n_epochs,
            "episodes": self.episodes, "eval_seed": self.seed, "reference": self.reference})
        self._observed_step = -1
        # trainer.log_dir is a collective under DDP: resolved here, on every rank, not at rank 0's writes
        log_dir = trainer.log_dir
        self._curve_path = Path(log_dir) / self.curve_file if self.curve_file and log_dir else None

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
            probe: dict[str, Any] = {}
            if self.planner is None:
                policy = ModulePolicy(pl_module, self._env.spec)
                probe = self._value_probe(pl_module)
            else:
                policy = MPCPlanner(pl_module, self._planner_model, self._env.spec, self.planner, seed=self.seed)
            self.last_result = evaluate_policy(self._env, policy, self.episodes, self.seed, self.reference, **probe)
        finally:
            pl_module.train(was_training)
        return self.last_result

    @staticmethod
    def _value_probe(pl_module: LightningModule) -> dict[str, Any]:
        """A critic's ``Q_tot`` of the actions the greedy policy takes (``q_policy`` next to ``rtg_policy``, the
        discounted return that followed, in the same units); nothing for a module without a critic."""
        hparams = getattr(pl_module, "hparams", {})
        if not callable(getattr(pl_module, "q_tot", None)) or "gamma" not in hparams:
            return {}

        def value(ts, actions):
            device = pl_module.device
            with torch.no_grad():
                q = pl_module.q_tot(torch.as_tensor(ts.obs, device=device), torch.as_tensor(ts.state, device=device),
                                    torch.as_tensor(actions, device=device))
            return q.float().cpu().numpy()

        return {"value": value, "gamma": float(hparams["gamma"]),
                "reward_scale": float(hparams.get("reward_scale", 1.0))}

    def _metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Rank 0's evaluation, the same numbers on every rank."""
        started = time.perf_counter()
        metrics = self.evaluate(pl_module).metrics() if trainer.is_global_zero else None
        if trainer.world_size > 1:
            metrics = trainer.strategy.broadcast(metrics, src=0)
        self._seconds = time.perf_counter() - started
        return metrics

    def _log(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> dict[str, float]:
        metrics = self._metrics(trainer, pl_module)
        for name, value in metrics.items():
            if name != "episodes":
                pl_module.log(f"{prefix}/{name}", value, sync_dist=False)
        return metrics

    def _add_point(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.curve.add(trainer.global_step, trainer.current_epoch, metrics)["eval_seconds"] = self._seconds
        if trainer.is_global_zero and self._curve_path is not None:
            self.curve.write(self._curve_path)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step  # updates so far, this batch's included
        every = trainer.log_every_n_steps
        # the steps whose self.log values reach the loggers (logo.loggers.logs_this_step); on the others
        # callback_metrics still holds older values
        if step != self._observed_step and every > 0 and (step % every == 0 or trainer.should_stop):
            self._observed_step = step
            self.curve.observe(trainer.callback_metrics)
        if self.every_n_steps is None or step == 0 or step % self.every_n_steps or self.curve.last_updates == step:
            return
        metrics = self._metrics(trainer, pl_module)
        logged = {f"{self.prefix}/{k}": v for k, v in metrics.items() if k != "episodes"}
        # straight to the loggers: pl_module.log from a batch hook would repeat the values at every later
        # logging step of the epoch. The step is the last update's, as Lightning writes training metrics.
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=step - 1)
            logger.save()
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in logged.items()})  # for monitors
        self._add_point(trainer, metrics)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_steps is not None or trainer.sanity_checking or \
                (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._add_point(trainer, self._log(trainer, pl_module, self.prefix))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test/env")

    def state_dict(self) -> dict[str, Any]:
        return {"curve": self.curve.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "curve" in state_dict:
            self.curve.load_state_dict(state_dict["curve"])

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
