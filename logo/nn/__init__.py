"""Plain nn.Modules shared by logo's models."""

from logo.nn.actions import from_unit_box, to_unit_box
from logo.nn.critics import TwinCritic
from logo.nn.ensemble import EnsembleLinear, EnsembleMLP
from logo.nn.gaussian import LogStdBounds, bounded_log_std, tanh_gaussian_sample
from logo.nn.mixers import QMixer, VDNMixer
from logo.nn.mlp import MLP, AgentSharedMLP
from logo.nn.normalizer import Normalizer
from logo.nn.units import DataUnits

__all__ = ["MLP", "AgentSharedMLP", "DataUnits", "EnsembleLinear", "EnsembleMLP", "LogStdBounds", "Normalizer",
           "QMixer", "TwinCritic", "VDNMixer", "bounded_log_std", "from_unit_box", "tanh_gaussian_sample",
           "to_unit_box"]
