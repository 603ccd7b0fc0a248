"""The data module of online training: one live environment, the replay buffer it fills, and a journal of every
episode played.

The training loop is Lightning's: ``train_dataloader`` yields one item per environment step
(its index), and the model's ``training_step`` asks this module to step the environment
(:meth:`OnlineEnvDataModule.step`) and to sample training batches from the buffer
(:meth:`OnlineEnvDataModule.sample`). Every finished episode is also saved to the journal folder, one
compressed ``.npz`` per episode in the format of ``RolloutDataModule``'s journal, so the episodes played
until any point of the run can be exported later (``logo.online.rollouts.export_played``: the
``medium-replay`` tier of ``logo tiers``), also after the run was interrupted and resumed from a checkpoint,
which refills the replay buffer from the journal. The buffer itself can be exported as a logo dataset
(:meth:`OnlineEnvDataModule.export_replay`, used by ``ReplayExport``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from logo.data.schema import DatasetSpec, LinkedDims
from logo.envs import make_env
from logo.envs.base import MultiAgentEnv, TimeStep
from logo.envs.episodes import episode_seed
from logo.errors import LogoError
from logo.online.replay import EpisodeRecord, ReplayBuffer
from logo.online.rollouts import PlayedJournal, journal_prefix

# Lightning warns that a run resumed mid-epoch has a dataloader without state: the position of an online run is the
# data module's own (``state_dict``: env steps, episodes, journal), and the learner stops at ``total_steps``.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class EnvStepIndices(IterableDataset):
    """The indices ``0 .. steps - 1``, one per environment step."""

    def __init__(self, steps: int):
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[int]:
        yield from range(self.steps)


class OnlineEnvDataModule(PlayedJournal, LinkedDims, LightningDataModule):
    """One copy of a logo environment, stepped by the model, a replay buffer of what it played and a journal.

    Resuming from a checkpoint (``--ckpt_path``) restores the step and episode counters and the sampling
    generator, and refills the buffer with the journal's latest ``buffer_size`` transitions. The episode in
    progress when the checkpoint was saved cannot be continued (the simulator's state is not in it): it is
    dropped (its steps still count in ``env_steps``) and the next episode starts from the next seed; journal
    files played after the checkpoint are removed when the resumed run journals its first episode.

    Args:
        env: environment family, e.g. ``mamujoco`` (see ``logo.envs.FAMILIES``).
        scenario: scenario of that family, e.g. ``HalfCheetah-2x3``.
        env_options: keyword options of the family's ``make`` (e.g. ``max_episode_steps``).
        total_steps: environment steps of the run (the length of the training dataloader).
        buffer_size: replay buffer capacity in transitions (oldest overwritten first).
        seed: seeds the training episodes' resets (``episode_seed(seed, k)``) and batch sampling.
        journal: folder of the played episodes (one ``.npz`` per finished episode); default
            ``<trainer.default_root_dir>/played``.

    Example:
        >>> dm = OnlineEnvDataModule("mamujoco", "HalfCheetah-2x3", total_steps=1000)  # doctest: +SKIP
        >>> dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_size  # doctest: +SKIP
        (2, 12, 17, 3)
    """

    def __init__(self, env: str, scenario: str, env_options: dict[str, Any] | None = None,
                 total_steps: int = 1_000_000, buffer_size: int = 1_000_000, seed: int = 0,
                 journal: str | None = None):
        super().__init__()
        for name, value in (("total_steps", total_steps), ("buffer_size", buffer_size)):
            if value < 1:
                raise LogoError(f"data.{name}: expected a positive number of steps, got {value}")
        if seed < 0:
            raise LogoError(f"data.seed: expected a non-negative integer, got {seed}")
        self.save_hyperparameters()
        self.family, self.scenario = env, scenario
        self.env_options = dict(env_options or {})
        self.total_steps, self.buffer_size, self.seed = total_steps, buffer_size, seed
        self.env = make_env(env, scenario, num_envs=1, **self.env_options)
        self.spec = self.env.spec
        self.buffer: ReplayBuffer | None = None
        self.init_journal(journal)
        self.env_steps = 0  # environment steps taken so far
        self.episodes = 0  # training episodes started so far
        self.finished = 0  # training episodes finished (and journaled) so far
        self._ts: TimeStep | None = None
        self._steps: list[tuple] = []  # the episode in progress: (obs, state, actions, reward, avail) per step
        self._rng = np.random.default_rng([seed, 1])

    @property
    def journal_files(self) -> int:
        """Files in the journal so far: one per finished episode."""
        return self.finished

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.buffer is None:
            self.buffer = ReplayBuffer(self.buffer_size, DatasetSpec.from_env(self.spec))

    def make_env(self, num_envs: int = 1) -> MultiAgentEnv:
        """A new, separate instance of this module's environment (e.g. for evaluation)."""
        return make_env(self.family, self.scenario, num_envs=num_envs, **self.env_options)

    def episode_seed(self, episode: int) -> int:
        """Reset seed of training episode ``episode`` (0-based)."""
        return episode_seed(self.seed, episode)

    def observe(self) -> TimeStep:
        """The current time step of the training copy (batch of 1); starts the first episode if needed."""
        if self._ts is None:
            self._reset()
        return self._ts

    def _reset(self) -> None:
        self._ts = self.env.reset([self.episode_seed(self.episodes)])
        self.episodes += 1

    def step(self, actions: np.ndarray) -> EpisodeRecord | None:
        """Play ``actions`` [1, N, action_dim] (or [1, N]) in the training copy and store the transition.

        Returns the finished episode's record when this step ends it (the next episode is then reset).
        """
        if self.buffer is None:
            raise RuntimeError("OnlineEnvDataModule.step before setup('fit')")
        ts = self.observe()
        nxt = self.env.step(actions)
        seed = self.episode_seed(self.episodes - 1)
        action = np.asarray(actions)[0]
        avail = None if ts.avail_actions is None else ts.avail_actions[0]
        record = self.buffer.add(
            ts.obs[0], ts.state[0], action, float(nxt.reward[0]), nxt.obs[0], nxt.state[0],
            bool(nxt.terminated[0]), bool(nxt.truncated[0]), seed=seed, avail=avail,
            next_avail=None if nxt.avail_actions is None else nxt.avail_actions[0])
        self._steps.append((np.array(ts.obs[0]), np.array(ts.state[0]), np.array(action), float(nxt.reward[0]),
                            None if avail is None else np.array(avail)))
        self.env_steps += 1
        self._ts = nxt
        if record is not None:
            self._journal_episode(record, nxt)
            self._reset()
        return record

    def _journal_episode(self, record: EpisodeRecord, last: TimeStep) -> None:
        """Save the episode that ``last`` (its final time step) ended as the journal's next file."""
        obs, state, actions, rewards, avail = zip(*self._steps)
        self._steps = []
        arrays = {"lengths": np.array([record.length], np.int64), "seeds": np.array([record.seed], np.int64),
                  "obs": np.stack(obs), "state": np.stack(state),
                  "actions": np.stack(actions).astype(self.buffer.actions.dtype),
                  "rewards": np.asarray(rewards, np.float32), "terminated": np.array([record.terminated]),
                  "final_obs": last.obs[:1].copy(), "final_state": last.state[:1].copy()}
        if self.spec.discrete:
            arrays["avail"], arrays["final_avail"] = np.stack(avail), last.avail_actions[:1].copy()
        if self.spec.has_win:
            arrays["won"] = np.asarray(last.info["won"][:1], bool)
        self.journal_write(self.finished, arrays)
        self.finished += 1

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """``batch_size`` transitions from the buffer as tensors on ``device`` (see ``ReplayBuffer.sample``)."""
        batch = self.buffer.sample(batch_size, self._rng)
        return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}

    def export_replay(self, path: str | Path, quality: str, behaviour: str, overwrite: bool = False,
                      extra: dict[str, Any] | None = None) -> Path:
        """Write every complete episode in the buffer as a logo dataset at ``path``; returns the path."""
        if self.buffer is None:
            raise RuntimeError("OnlineEnvDataModule.export_replay before setup('fit')")
        episodes = self.buffer.complete_episodes()
        returns = np.array([e.ret for e in episodes], np.float64)
        extra = {"env_steps": self.env_steps, "episode_seed_base": self.seed,
                 "episodes_dropped_by_buffer": len(self.buffer.episodes) - len(episodes),
                 "replay_return_mean": float(returns.mean()) if len(returns) else float("nan"), **(extra or {})}
        spec = DatasetSpec.from_env(self.spec, quality=quality, behaviour=behaviour,
                                    source=f"logo online training in {self.family}/{self.scenario}", extra=extra)
        return self.buffer.write_dataset(path, spec, obs_mask=self.spec.obs_mask, overwrite=overwrite)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(EnvStepIndices(self.total_steps), batch_size=None)

    def state_dict(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "episodes": self.episodes, "finished": self.finished,
                "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the counters and the sampling generator, and the buffer refilled from the journal."""
        self.env_steps, self.episodes, self.finished = (int(state[k]) for k in ("env_steps", "episodes", "finished"))
        self._rng.bit_generator.state = state["rng"]
        self._ts, self._steps, self._pruned = None, [], False  # the episode in progress is dropped
        self.buffer = ReplayBuffer(self.buffer_size, DatasetSpec.from_env(self.spec))
        latest, held = [], 0
        for path in reversed(journal_prefix(self.journal, self.finished)):
            if held >= self.buffer_size:
                break
            with np.load(path) as data:
                latest.append(dict(data))
            held += int(latest[-1]["lengths"].sum())
        for arrays in reversed(latest):
            episode = {k: v[0] if k in ("terminated", "final_obs", "final_state", "final_avail") else v
                       for k, v in arrays.items()}
            self.buffer.add_episode(episode, seed=int(arrays["seeds"][0]))
