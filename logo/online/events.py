"""What the online learners (OnlineTD3, OnlineMAPPO) share: event logging, the env-steps clock, the eval env,
the latest evaluation (which ``ReturnSnapshots`` reads) and the contract of acting as while learning."""

from __future__ import annotations

import time
from typing import Any

from logo.envs.base import MultiAgentEnv


class OnlineEvents:
    """Mixin of an online learner (before ``LightningModule`` in its bases). The learner sets ``self._eval_env``
    (its evaluation environment, made on first use), ``self._clock`` ((time, env steps) at the last
    evaluation) and ``self.last_evaluation`` in ``__init__`` through :meth:`init_events`, and has an ``online``
    data module with ``env_steps``.

    A learner also implements ``behave(obs, avail, state, generator) -> actions``: its actions as it acts while
    learning (sampled, or with exploration noise), drawn from ``generator``, and ``behaviour_note() -> str`` saying
    so in words; the learned tiers are played with it (``logo.online.behaviour.SampledModulePolicy``).
    """

    _eval_env: MultiAgentEnv | None
    _clock: tuple[float, int] | None
    last_evaluation: dict[str, Any] | None

    def init_events(self) -> None:
        self._eval_env = None
        self._clock = None
        self.last_evaluation = None

    def keep_evaluation(self, metrics: dict[str, float], env_steps: int, iteration: int, episodes_played: int,
                        journal_files: int) -> None:
        """Remember an evaluation (``eval/return``, ``eval/return_std``, ``eval/win_rate`` if any) and when it was
        made: ``env_steps``, the learner's ``iteration`` (training steps so far), the ``episodes_played`` (finished)
        so far and the data module's ``journal_files`` holding them (the medium-replay tier of a snapshot)."""
        self.last_evaluation = {"return": metrics["eval/return"], "return_std": metrics["eval/return_std"],
                                "win_rate": metrics.get("eval/win_rate"), "env_steps": int(env_steps),
                                "iteration": int(iteration), "episodes_played": int(episodes_played),
                                "journal_files": int(journal_files)}

    def log_event(self, metrics: dict[str, float], env_steps: int) -> None:
        """Send metrics straight to the loggers at step ``env_steps``.

        Events (episode ends, evaluations) happen on some steps only; ``self.log`` would repeat their
        last value at every later logging step, so they bypass it.
        """
        for logger in self.loggers:
            logger.log_metrics({k: float(v) for k, v in metrics.items()}, step=env_steps)

    def on_train_start(self) -> None:
        self._clock = (time.perf_counter(), self.online.env_steps)

    def on_fit_end(self) -> None:
        if self._eval_env is not None:
            self._eval_env.close()
            self._eval_env = None
