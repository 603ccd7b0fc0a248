"""Online learners that make behaviour policies and datasets: OnlineTD3 (continuous actions) with its live-environment
data module, replay buffer and ``medium-replay`` export; OnlineMAPPO (discrete actions) with its rollout data module,
journal of played episodes and return snapshots (the learned tiers of ``logo tiers``)."""

from logo.online.datamodule import OnlineEnvDataModule
from logo.online.export import ReplayExport
from logo.online.ppo import OnlineMAPPO, SampledModulePolicy
from logo.online.replay import EpisodeRecord, ReplayBuffer
from logo.online.rollouts import RolloutDataModule
from logo.online.snapshots import ReturnSnapshots
from logo.online.td3 import OnlineTD3

__all__ = ["EpisodeRecord", "OnlineEnvDataModule", "OnlineMAPPO", "OnlineTD3", "ReplayBuffer", "ReplayExport",
           "ReturnSnapshots", "RolloutDataModule", "SampledModulePolicy"]
