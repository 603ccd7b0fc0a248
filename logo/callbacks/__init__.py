"""Lightning callbacks: evaluation, synthetic rollout rounds."""

from logo.callbacks.evaluation import EnvEvaluation
from logo.callbacks.rollout_rounds import RolloutRounds

__all__ = ["EnvEvaluation", "RolloutRounds"]
