"""Plain nn.Modules shared by logo's models."""

from logo.nn.actions import from_unit_box, to_unit_box
from logo.nn.ensemble import EnsembleLinear, EnsembleMLP
from logo.nn.gaussian import LogStdBounds, bounded_log_std
from logo.nn.mixers import QMixer, VDNMixer
from logo.nn.mlp import MLP, AgentSharedMLP
from logo.nn.normalizer import Normalizer
from logo.nn.units import DataUnits

__all__ = ["MLP", "AgentSharedMLP", "DataUnits", "EnsembleLinear", "EnsembleMLP", "LogStdBounds", "Normalizer",
           "QMixer", "VDNMixer", "bounded_log_std", "from_unit_box", "to_unit_box"]
