"""World models: LOGO (local-to-global) and the baselines it is compared with, plus rollouts."""

from logo.world_model.base import WorldModel, load_world_model
from logo.world_model.ensemble import EnsembleWorldModel
from logo.world_model.joint import DirectWorldModel
from logo.world_model.logo import LogoWorldModel
from logo.world_model.model_rollout import Rollout, StepResult, rollout
from logo.world_model.open_loop import open_loop_errors

__all__ = ["DirectWorldModel", "EnsembleWorldModel", "LogoWorldModel", "Rollout", "StepResult", "WorldModel",
           "load_world_model", "open_loop_errors", "rollout"]
