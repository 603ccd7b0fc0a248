"""Online learners that make behaviour policies and datasets: OnlineTD3, its live-environment data module,
the replay buffer it fills, and the callback that exports that buffer as a ``medium-replay`` dataset."""

from logo.online.datamodule import OnlineEnvDataModule
from logo.online.export import ReplayExport
from logo.online.replay import EpisodeRecord, ReplayBuffer
from logo.online.td3 import OnlineTD3

__all__ = ["EpisodeRecord", "OnlineEnvDataModule", "OnlineTD3", "ReplayBuffer", "ReplayExport"]
