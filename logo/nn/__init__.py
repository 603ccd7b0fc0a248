"""Plain nn.Modules shared by logo's models."""

from logo.nn.mlp import MLP, AgentSharedMLP
from logo.nn.normalizer import Normalizer

__all__ = ["MLP", "AgentSharedMLP", "Normalizer"]
