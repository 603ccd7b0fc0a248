"""The learning curve of a fit: each environment evaluation next to the training metrics that led to it.

:class:`~logo.callbacks.EnvEvaluation` keeps one :class:`LearningCurve` and writes it as ``curve.json`` in the
run's log folder after every evaluation; ``logo curves`` (:mod:`logo.curves`) reads and plots such files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logo.provenance import write_json

CURVE_FORMAT = 1  # the "format" of a curve file; bump when a field changes meaning
TRAIN_PREFIX = "train/"


class LearningCurve:
    """Evaluation points of one run, each with the mean of the training metrics logged since the point before.

    A point is a flat dict: ``updates`` (optimizer steps so far), ``epoch``, the evaluation's metrics
    (``return_mean``, ``win_rate``, ``normalized_score``, ...), and for every scalar ``train/*`` metric the
    mean of the values logged since the previous point (``train/q_data``, ``train/rtg_real``,
    ``train/synthetic_share``, ...), with ``train_logs`` the number of logged steps that mean is over
    (EnvEvaluation adds ``eval_seconds``, the evaluation's wall time).
    Training metrics are what the module sends to the loggers, so they are seen every
    ``trainer.log_every_n_steps`` updates, not at every update.

    Args:
        meta: fields stored next to the points (label, seed, evaluation settings, ...).

    Example:
        >>> curve = LearningCurve({"label": "MACQL"})
        >>> curve.observe({"train/q_data": 1.0, "val/loss": 3.0}); curve.observe({"train/q_data": 2.0})
        >>> curve.add(updates=100, epoch=0, evaluation={"return_mean": -40.0})["train/q_data"]
        1.5
    """

    def __init__(self, meta: Mapping[str, Any] | None = None) -> None:
        self.meta = dict(meta or {})
        self.points: list[dict[str, Any]] = []
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._logs = 0

    def observe(self, metrics: Mapping[str, Any]) -> None:
        """Add one logged step's metrics (scalars or one-element tensors); only ``train/*`` keys are kept."""
        self._logs += 1
        for name, value in metrics.items():
            if not name.startswith(TRAIN_PREFIX):
                continue
            if hasattr(value, "numel"):
                if value.numel() != 1:
                    continue
                value = value.item()
            value = float(value)
            if math.isfinite(value):
                self._sums[name] = self._sums.get(name, 0.0) + value
                self._counts[name] = self._counts.get(name, 0) + 1

    def add(self, updates: int, epoch: int, evaluation: Mapping[str, float]) -> dict[str, Any]:
        """Append the point of an evaluation after ``updates`` updates and start a new training window."""
        point: dict[str, Any] = {"updates": int(updates), "epoch": int(epoch)}
        point.update({k: float(v) for k, v in evaluation.items() if k != "episodes"})
        point.update({name: total / self._counts[name] for name, total in sorted(self._sums.items())})
        point["train_logs"] = self._logs
        self.points.append(point)
        self._sums, self._counts, self._logs = {}, {}, 0
        return point

    @property
    def last_updates(self) -> int | None:
        """``updates`` of the last point (None before the first)."""
        return self.points[-1]["updates"] if self.points else None

    def to_dict(self) -> dict[str, Any]:
        """The curve file's content: ``format``, the meta fields, ``points``."""
        return {"format": CURVE_FORMAT, **self.meta, "points": list(self.points)}

    def write(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (a reader never sees half a file)."""
        write_json(Path(path), self.to_dict())

    def state_dict(self) -> dict[str, Any]:
        """Points and the open training window, so a resumed fit continues the same curve."""
        return {"points": list(self.points), "sums": dict(self._sums), "counts": dict(self._counts),
                "logs": self._logs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.points = list(state.get("points", []))
        self._sums, self._counts = dict(state.get("sums", {})), dict(state.get("counts", {}))
        self._logs = int(state.get("logs", 0))
