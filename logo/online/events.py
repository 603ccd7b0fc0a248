"""What the online learners (OnlineTD3, OnlineMAPPO) share: event logging, the env-steps clock, the eval env."""

from __future__ import annotations

import time

from logo.envs.base import MultiAgentEnv


class OnlineEvents:
    """Mixin of an online learner (before ``LightningModule`` in its bases). The learner sets ``self._eval_env``
    (its evaluation environment, made on first use) and ``self._clock`` ((time, env steps) at the last
    evaluation) in ``__init__`` through :meth:`init_events`, and has an ``online`` data module with ``env_steps``."""

    _eval_env: MultiAgentEnv | None
    _clock: tuple[float, int] | None

    def init_events(self) -> None:
        self._eval_env = None
        self._clock = None

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
