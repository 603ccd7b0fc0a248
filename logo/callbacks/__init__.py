"""Lightning callbacks: evaluation, world-model diagnostics, dataset exports."""

from logo.callbacks.diagnostics import WorldModelDiagnostics
from logo.callbacks.evaluation import EnvEvaluation
from logo.callbacks.replay_export import ReplayExport

__all__ = ["EnvEvaluation", "ReplayExport", "WorldModelDiagnostics"]
