"""Lightning callbacks: evaluation."""

from logo.callbacks.evaluation import EnvEvaluation

__all__ = ["EnvEvaluation"]
