"""Lightning callbacks: evaluation, dataset exports."""

from logo.callbacks.evaluation import EnvEvaluation
from logo.callbacks.replay_export import ReplayExport

__all__ = ["EnvEvaluation", "ReplayExport"]
