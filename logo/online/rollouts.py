"""On-policy data for online learners: many copies of one environment playing whole episodes, and a journal
of every episode played, from which ``medium-replay`` datasets are written.

The training loop is Lightning's: ``train_dataloader`` yields one item per iteration until the run has
taken ``total_steps`` environment steps, and the model's ``training_step`` asks this module to play one
batch of episodes (:meth:`RolloutDataModule.play`), one per copy, all copies in lockstep from one reset
(the adapters' episode contract: a finished copy is frozen until the next reset). Every played batch is
also saved to the journal folder, one compressed ``.npz`` per iteration, so the episodes of any prefix of
the run can be exported later (:func:`export_played`), also after the run was interrupted and resumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from logo.data.schema import DatasetSpec, LinkedDims
from logo.data.writer import DatasetWriter
from logo.envs import make_env
from logo.envs.base import MultiAgentEnv, TimeStep
from logo.envs.episodes import episode_seed
from logo.errors import LogoError

# Lightning warns that a ModelCheckpoint of a manually optimised module holds the weights after the step's updates:
# for an on-policy learner whose step is a whole iteration, that is the state a resumed run continues from.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")

# (time step) -> (actions [B, N], extras: name -> [B, ...] arrays kept per step, e.g. log-probabilities)
ActFn = Callable[[TimeStep], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass
class Rollout:
    """One batch of B episodes played in lockstep, time first (T = the longest episode's length).

    Step ``t`` of copy ``b`` is real where ``valid[t, b]``; later steps of a finished copy are padding.
    """

    obs: np.ndarray  # [T, B, N, obs_dim]
    state: np.ndarray  # [T, B, state_dim]
    avail: np.ndarray | None  # [T, B, N, n_actions] bool (discrete)
    actions: np.ndarray  # [T, B, N]
    rewards: np.ndarray  # [T, B] team reward of the step
    terminated: np.ndarray  # [T, B] bool: the episode truly ended at this step
    done: np.ndarray  # [T, B] bool: the episode ended at this step (terminated or truncated)
    valid: np.ndarray  # [T, B] bool
    final_obs: np.ndarray  # [B, N, obs_dim] after each episode's last step
    final_state: np.ndarray  # [B, state_dim]
    final_avail: np.ndarray | None  # [B, N, n_actions]
    seeds: list[int]  # reset seed of each copy
    won: np.ndarray | None  # [B] bool where the environment has a win condition
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [T, B, ...]

    @property
    def lengths(self) -> np.ndarray:
        return self.valid.sum(0)  # [B]

    @property
    def returns(self) -> np.ndarray:
        return (self.rewards * self.valid).sum(0, dtype=np.float64)  # [B]

    def journal_arrays(self) -> dict[str, np.ndarray]:
        """The real steps, episode after episode, as the journal stores them."""
        lengths = self.lengths
        steps = np.concatenate([np.flatnonzero(self.valid[:, b]) for b in range(self.valid.shape[1])])
        copies = np.repeat(np.arange(self.valid.shape[1]), lengths)
        out = {"lengths": lengths.astype(np.int64), "seeds": np.asarray(self.seeds, np.int64),
               "obs": self.obs[steps, copies], "state": self.state[steps, copies],
               "actions": self.actions[steps, copies], "rewards": self.rewards[steps, copies],
               "terminated": self.terminated[lengths - 1, np.arange(len(lengths))],
               "final_obs": self.final_obs, "final_state": self.final_state}
        if self.avail is not None:
            out["avail"], out["final_avail"] = self.avail[steps, copies], self.final_avail
        if self.won is not None:
            out["won"] = self.won
        return out


def play_episodes(env: MultiAgentEnv, act: ActFn, seeds: list[int]) -> Rollout:
    """Reset every copy of ``env`` with ``seeds`` and step all of them until each has finished its episode."""
    ts = env.reset(seeds)
    batch = env.num_envs
    running = np.ones(batch, bool)
    steps: list[tuple] = []
    extras: dict[str, list[np.ndarray]] = {}
    won = np.zeros(batch, bool)
    while running.any():
        actions, extra = act(ts)
        nxt = env.step(actions)
        steps.append((ts.obs, ts.state, ts.avail_actions, actions, nxt.reward * running, nxt.terminated & running,
                      nxt.done & running, running.copy()))
        for name, value in extra.items():
            extras.setdefault(name, []).append(value)
        if "won" in nxt.info:
            won |= nxt.info["won"] & running
        running &= ~nxt.done
        ts = nxt
    obs, state, avail, actions, rewards, terminated, done, valid = (
        None if column[0] is None else np.stack(column) for column in zip(*steps))
    return Rollout(obs=obs, state=state, avail=avail, actions=actions, rewards=rewards.astype(np.float32),
                   terminated=terminated, done=done, valid=valid, final_obs=ts.obs, final_state=ts.state,
                   final_avail=ts.avail_actions, seeds=list(seeds),
                   won=won if env.spec.has_win else None,
                   extras={k: np.stack(v) for k, v in extras.items()})


class IterationIndices(IterableDataset):
    """Iteration numbers, for as long as the data module has environment steps left."""

    def __init__(self, module: RolloutDataModule):
        self.module = module

    def __iter__(self) -> Iterator[int]:
        while self.module.env_steps < self.module.total_steps:
            yield self.module.iterations


class PlayedJournal:
    """The journal of an online data module: a folder of numbered ``.npz`` files of the episodes it played
    (``write_journal``), read back by ``export_played`` and, on resume, by ``OnlineEnvDataModule``.

    A subclass calls :meth:`init_journal` with its ``journal`` argument (None: ``<trainer.default_root_dir>/played``)
    and writes every file through :meth:`journal_write`.
    """

    _journal: str | None

    def init_journal(self, journal: str | None) -> None:
        self._journal = journal
        self._pruned = False  # files at and past the first write's index (an interrupted run's) removed yet

    @property
    def journal(self) -> Path:
        if self._journal is not None:
            return Path(self._journal)
        if self.trainer is None:
            raise RuntimeError(f"{type(self).__name__}.journal: give data.journal or attach the module to a Trainer")
        return Path(self.trainer.default_root_dir) / "played"

    def journal_write(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Save journal file ``index``. The first write of a run, fresh or resumed, first removes the files numbered
        ``index`` and above: what an interrupted or earlier run in the same folder played after this point."""
        if not self._pruned:
            prune_journal(self.journal, index)
            self._pruned = True
        write_journal(self.journal, index, arrays)


class RolloutDataModule(PlayedJournal, LinkedDims, LightningDataModule):
    """``num_envs`` copies of one environment playing whole episodes for an on-policy learner (see the module doc).

    Args:
        env: environment family with discrete actions, e.g. ``smax``.
        scenario: scenario of that family, e.g. ``3m``.
        env_options: keyword options of the family's ``make`` (e.g. ``max_steps``).
        num_envs: environment copies, each playing one episode per iteration.
        total_steps: environment steps of the run (transitions of real, unpadded steps).
        seed: seeds the episodes' resets: episode ``k`` is reset with ``episode_seed(seed, k)``.
        journal: folder of the played episodes; default ``<trainer.default_root_dir>/played``.

    Example:
        >>> dm = RolloutDataModule("smax", "3m", num_envs=64, total_steps=1_000_000)  # doctest: +SKIP
        >>> dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_size  # doctest: +SKIP
        (3, 75, 72, 8)
    """

    def __init__(self, env: str, scenario: str, env_options: dict[str, Any] | None = None, num_envs: int = 64,
                 total_steps: int = 1_000_000, seed: int = 0, journal: str | None = None):
        super().__init__()
        for name, value in (("num_envs", num_envs), ("total_steps", total_steps)):
            if value < 1:
                raise LogoError(f"data.{name}: expected a positive integer, got {value}")
        if seed < 0:
            raise LogoError(f"data.seed: expected a non-negative integer, got {seed}")
        self.save_hyperparameters()
        self.family, self.scenario = env, scenario
        self.env_options = dict(env_options or {})
        self.num_envs, self.total_steps, self.seed = num_envs, total_steps, seed
        self.init_journal(journal)
        self.env = make_env(env, scenario, num_envs=num_envs, **self.env_options)
        self.spec = self.env.spec
        if not self.spec.discrete:
            raise LogoError(f"RolloutDataModule: {env}/{scenario} has continuous actions; the on-policy learners "
                            "here are for discrete actions (use OnlineTD3 with OnlineEnvDataModule)")
        self.env_steps = 0  # real (unpadded) environment steps so far
        self.episodes = 0  # episodes played so far
        self.iterations = 0  # batches played so far

    def make_env(self, num_envs: int = 1) -> MultiAgentEnv:
        """A new, separate instance of this module's environment (e.g. for evaluation)."""
        return make_env(self.family, self.scenario, num_envs=num_envs, **self.env_options)

    def dataset_spec(self, quality: str, behaviour: str, extra: dict[str, Any] | None = None) -> DatasetSpec:
        """The spec of a dataset of this module's environment (env options kept: evaluation rebuilds the env)."""
        return DatasetSpec.from_env(self.spec, quality=quality, behaviour=behaviour,
                                    source=f"logo online training in {self.family}/{self.scenario}",
                                    extra={"env_options": self.env_options, **(extra or {})})

    @property
    def journal_files(self) -> int:
        """Files in the journal so far: one per iteration."""
        return self.iterations

    def play(self, act: ActFn) -> Rollout:
        """Play one episode in every copy with ``act``, journal the episodes and count the steps."""
        seeds = [episode_seed(self.seed, self.episodes + b) for b in range(self.num_envs)]
        rollout = play_episodes(self.env, act, seeds)
        self.journal_write(self.iterations, rollout.journal_arrays())
        self.iterations += 1
        self.episodes += self.num_envs
        self.env_steps += int(rollout.valid.sum())
        return rollout

    def train_dataloader(self) -> DataLoader:
        return DataLoader(IterationIndices(self), batch_size=None)

    def state_dict(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "episodes": self.episodes, "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps, self.episodes, self.iterations = (int(state[k]) for k in ("env_steps", "episodes",
                                                                                   "iterations"))

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            self.env.close()


def journal_path(journal: str | Path, index: int) -> Path:
    """The journal's file number ``index`` (0-based)."""
    return Path(journal) / f"{index:07d}.npz"


def write_journal(journal: str | Path, index: int, arrays: dict[str, np.ndarray]) -> None:
    """Save one journal file: ``lengths`` [E] and ``seeds`` [E] of its E episodes, their steps one after the other
    (``obs``, ``state``, ``actions``, ``rewards``, ``avail``), and per episode ``terminated``, ``final_obs``,
    ``final_state`` (``final_avail``, ``won``). Written to a temporary name first, so a killed run leaves no
    truncated file."""
    path = journal_path(journal, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)


def prune_journal(journal: str | Path, keep: int) -> list[Path]:
    """Remove the journal's files numbered ``keep`` and above (played after the checkpoint a run resumed from, or
    by an earlier run in the same folder); returns them."""
    removed = []
    for path in sorted(Path(journal).glob("*.npz")):
        stem = path.name.split(".")[0]
        if not stem.isdigit() or int(stem) >= keep or path.name.endswith(".partial.npz"):
            path.unlink()
            removed.append(path)
    return removed


def journal_prefix(journal: str | Path, files: int) -> list[Path]:
    """The journal's first ``files`` files, in order; a LogoError names the first one missing."""
    folder = Path(journal)
    paths = [journal_path(folder, i) for i in range(files)]
    missing = next((f for f in paths if not f.is_file()), None)
    if missing is not None:
        raise LogoError(f"journal {folder}: {missing.name} is missing; the run's played episodes are incomplete "
                        f"(expected {files} files)")
    return paths


def export_played(journal: str | Path, files: int, path: str | Path, spec: DatasetSpec,
                  obs_mask: np.ndarray | None = None, overwrite: bool = False,
                  extra_attrs: dict[str, Any] | None = None) -> tuple[Path, dict[str, float]]:
    """Write every episode of the journal's first ``files`` files, in the order played, as a dataset (one file is
    an iteration of ``RolloutDataModule``, an episode of ``OnlineEnvDataModule``).

    Returns its path and a summary (episodes, transitions, return mean and std, win rate).
    """
    if Path(path).exists() and not overwrite:
        raise LogoError(f"out: {path} already exists; remove it or pass overwrite to replace it")
    returns, wins, transitions = [], [], 0
    writer = DatasetWriter(path, spec=spec, overwrite=overwrite)
    with writer:
        if obs_mask is not None:
            writer.set_obs_mask(obs_mask)
        for file in journal_prefix(journal, files):
            with np.load(file) as data:
                arrays = dict(data)
            bounds = np.concatenate([[0], np.cumsum(arrays["lengths"])])
            for e in range(len(arrays["lengths"])):
                s = slice(bounds[e], bounds[e + 1])
                writer.add_episode(
                    observations=arrays["obs"][s], state=arrays["state"][s], actions=arrays["actions"][s],
                    rewards=arrays["rewards"][s], final_observation=arrays["final_obs"][e],
                    final_state=arrays["final_state"][e], terminated=bool(arrays["terminated"][e]),
                    avail_actions=arrays["avail"][s] if "avail" in arrays else None,
                    final_avail_actions=arrays["final_avail"][e] if "final_avail" in arrays else None)
                returns.append(float(arrays["rewards"][s].sum(dtype=np.float64)))
                if "won" in arrays:
                    wins.append(bool(arrays["won"][e]))
            transitions += int(bounds[-1])
        summary = summarize(np.asarray(returns), np.asarray(wins) if wins else None, transitions)
        out = writer.close(extra_attrs={k: {**v, **summary} if k == "provenance" else v
                                        for k, v in (extra_attrs or {}).items()})
    return out, summary


def summarize(returns: np.ndarray, wins: np.ndarray | None, transitions: int) -> dict[str, float]:
    """episodes, transitions, return mean / std and (where known) win rate of a set of episodes."""
    summary = {"episodes": int(len(returns)), "transitions": int(transitions),
               "return_mean": float(returns.mean()), "return_std": float(returns.std())}
    if wins is not None:
        summary["win_rate"] = float(np.mean(wins))
    return summary
