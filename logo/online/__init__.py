"""Online learners that make behaviour policies and datasets: OnlineTD3 (continuous actions) with its live-environment
data module and replay buffer; OnlineMAPPO (discrete actions) with its rollout data module. Both data modules journal
every episode played, ``ReturnSnapshots`` checkpoints either learner at rising evaluation returns, and
``SampledModulePolicy`` plays a checkpoint as it acted while learning: the learned tiers of ``logo tiers``.
``ReplayExport`` writes an OnlineTD3 run's replay buffer the first time it reaches a fixed return."""

from logo.online.behaviour import SampledModulePolicy
from logo.online.datamodule import OnlineEnvDataModule
from logo.online.export import ReplayExport
from logo.online.ppo import OnlineMAPPO
from logo.online.replay import EpisodeRecord, ReplayBuffer
from logo.online.rollouts import RolloutDataModule
from logo.online.snapshots import ReturnSnapshots
from logo.online.td3 import OnlineTD3

__all__ = ["EpisodeRecord", "OnlineEnvDataModule", "OnlineMAPPO", "OnlineTD3", "ReplayBuffer", "ReplayExport",
           "ReturnSnapshots", "RolloutDataModule", "SampledModulePolicy"]
