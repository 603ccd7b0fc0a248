"""Lightning callbacks: evaluation, synthetic rollout rounds, world-model diagnostics."""

from logo.callbacks.diagnostics import WorldModelDiagnostics
from logo.callbacks.evaluation import EnvEvaluation
from logo.callbacks.rollout_rounds import RolloutRounds

__all__ = ["EnvEvaluation", "RolloutRounds", "WorldModelDiagnostics"]
