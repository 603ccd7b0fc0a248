"""Lightning callbacks: evaluation, synthetic rollout rounds, dataset exports."""

from logo.callbacks.evaluation import EnvEvaluation
from logo.callbacks.replay_export import ReplayExport
from logo.callbacks.rollout_rounds import RolloutRounds

__all__ = ["EnvEvaluation", "ReplayExport", "RolloutRounds"]
