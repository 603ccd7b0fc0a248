"""Atomic, append-only dataset writer.

A dataset is written under a hidden temporary folder beside the target and renamed into place
only when :meth:`DatasetWriter.close` succeeds, so an interrupted write never leaves anything
at the target path that looks like a dataset.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from logo import __version__
from logo.data.schema import DatasetSpec
from logo.data.validate import validate_dataset
from logo.errors import DatasetError, LogoError

DEFAULT_CHUNK_STEPS = 4096
EPISODE_CHUNK = 1024


class DatasetWriter:
    """Append episodes to a new zarr dataset; the dataset appears at ``path`` on :meth:`close`.

    Args:
        path: target folder, conventionally ending in ``.zarr``.
        spec: what the dataset holds (env, dims, action kind, quality...).
        chunk_steps: chunk length along the time axis (1k-16k steps suits random access and zstd).
        overwrite: replace an existing dataset at ``path`` (only once the new one is complete).
        validate: run the full validator before the rename; an invalid dataset is never published.

    Example:
        >>> with DatasetWriter("spread.zarr", spec=spec) as w:  # doctest: +SKIP
        ...     w.add_episode(observations=obs, state=state, actions=act, rewards=rew,
        ...                   terminated=True, final_observation=obs_T, final_state=state_T,
        ...                   avail_actions=avail, final_avail_actions=avail_T)
    """

    def __init__(self, path: str | Path, spec: DatasetSpec, chunk_steps: int = DEFAULT_CHUNK_STEPS,
                 overwrite: bool = False, validate: bool = True):
        self.path = Path(path)
        self.spec = spec
        self.chunk_steps = int(chunk_steps)
        self.overwrite = overwrite
        self.validate = validate
        if self.chunk_steps < 1:
            raise ValueError(f"chunk_steps: expected a positive number of steps, got {chunk_steps}")
        self._refuse_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        owner = f"{os.getpid()}@{socket.gethostname()}"  # lets a later writer tell a dead run's folder
        self.tmp_path = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}-{owner}"
        self._group = zarr.open_group(str(self.tmp_path), mode="w")
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_steps = 0
        self._n_steps = 0
        self._n_episodes = 0
        self._returns: list[float] = []
        self._has_agent_rewards: bool | None = None
        self._extra_names: set[str] | None = None
        self._closed = False
        shapes, dtypes = spec.array_shapes(), spec.array_dtypes()
        names = set(spec.required_arrays()) - {"obs_mask"}
        for name in sorted(names):
            shape = tuple(0 if isinstance(d, str) else d for d in shapes[name])
            chunk = self.chunk_steps if shapes[name][0] == "T" else EPISODE_CHUNK
            self._group.create_array(name, shape=shape, chunks=(chunk, *shape[1:]), dtype=dtypes[name],
                                     compressors=ZstdCodec(level=3))
        self._group.create_array("obs_mask", shape=(spec.n_agents, spec.obs_dim), dtype="bool")
        self._group["obs_mask"][...] = np.ones((spec.n_agents, spec.obs_dim), bool)

    def _refuse_existing(self) -> None:
        if self.path.exists() and not self.overwrite:
            raise LogoError(f"{self.path}: already exists (pass overwrite=True / --overwrite to replace it)")

    def set_obs_mask(self, obs_mask: np.ndarray) -> None:
        """Mark padded observation features (False) when agents' observation sizes differ."""
        obs_mask = np.asarray(obs_mask, bool)
        if obs_mask.shape != (self.spec.n_agents, self.spec.obs_dim):
            raise ValueError(f"obs_mask: expected shape {(self.spec.n_agents, self.spec.obs_dim)}, "
                             f"got {obs_mask.shape}")
        self._group["obs_mask"][...] = obs_mask

    def add_episode(self, *, observations: np.ndarray, state: np.ndarray, actions: np.ndarray,
                    rewards: np.ndarray, final_observation: np.ndarray, final_state: np.ndarray,
                    terminated: bool, avail_actions: np.ndarray | None = None,
                    final_avail_actions: np.ndarray | None = None,
                    agent_rewards: np.ndarray | None = None,
                    extras: dict[str, np.ndarray] | None = None) -> None:
        """Append one episode of L steps.

        Args:
            observations: [L, N, obs_dim] observation before each action.
            state: [L, state_dim] global state before each action.
            actions: [L, N] int (discrete) or [L, N, action_dim] float (continuous).
            rewards: [L] team reward.
            final_observation: [N, obs_dim] observation after the last step.
            final_state: [state_dim] state after the last step.
            terminated: True if the episode ended in a true termination, False if it was truncated.
            avail_actions: [L, N, n_actions] legal actions (discrete only).
            final_avail_actions: [N, n_actions] legal actions after the last step (discrete only).
            agent_rewards: [L, N] optional per-agent rewards; all episodes have them or none.
            extras: optional further per-step float32 arrays ``[L, ...]`` outside the format (for example
                the ``uncertainty`` of model rollouts); every episode gives the same names.
        """
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        length = len(rewards)
        if length == 0:
            raise ValueError("rewards: an episode needs at least one step")
        spec = self.spec
        ends = np.zeros(length, bool)
        ends[-1] = True
        step = {
            "observations": np.asarray(observations, np.float32),
            "state": np.asarray(state, np.float32),
            "actions": np.asarray(actions, np.int64 if spec.discrete else np.float32),
            "rewards": np.asarray(rewards, np.float32),
            "terminals": ends & bool(terminated),
            "truncations": ends & (not terminated),
        }
        episode = {
            "episode_starts": np.array([self._n_steps + self._pending_steps], np.int64),
            "final_observations": np.asarray(final_observation, np.float32)[None],
            "final_state": np.asarray(final_state, np.float32)[None],
        }
        if spec.discrete:
            if avail_actions is None or final_avail_actions is None:
                raise ValueError("avail_actions/final_avail_actions: required for discrete datasets")
            step["avail_actions"] = np.asarray(avail_actions, bool)
            episode["final_avail_actions"] = np.asarray(final_avail_actions, bool)[None]
        shapes = spec.array_shapes()
        if self._has_agent_rewards is None:
            self._has_agent_rewards = agent_rewards is not None
            if self._has_agent_rewards:
                self._group.create_array("agent_rewards", shape=(0, spec.n_agents),
                                         chunks=(self.chunk_steps, spec.n_agents), dtype="float32",
                                         compressors=ZstdCodec(level=3))
        if self._has_agent_rewards != (agent_rewards is not None):
            raise ValueError("agent_rewards: give them for every episode or for none")
        if agent_rewards is not None:
            step["agent_rewards"] = np.asarray(agent_rewards, np.float32)
        extras = {name: np.asarray(value, np.float32) for name, value in (extras or {}).items()}
        if self._extra_names is None:
            self._extra_names = set(extras)
            for name, value in extras.items():
                if name in shapes:
                    raise ValueError(f"extras[{name!r}]: expected a name outside the format's own arrays")
                self._group.create_array(name, shape=(0, *value.shape[1:]),
                                         chunks=(self.chunk_steps, *value.shape[1:]), dtype="float32",
                                         compressors=ZstdCodec(level=3))
        if set(extras) != self._extra_names:
            raise ValueError(f"extras: every episode must give the same arrays, expected {sorted(self._extra_names)}, "
                             f"got {sorted(extras)}")
        for name, value in extras.items():
            if len(value) != length:
                raise ValueError(f"extras[{name!r}]: expected {length} rows, got {len(value)}")
            step[name] = value

        for name, arr in {**step, **episode}.items():
            if name not in shapes:  # extras were checked above
                continue
            want = tuple(length if d == "T" else 1 if d == "E" else d for d in shapes[name])
            got = arr.shape
            if name in episode:  # report per-episode arrays without their leading axis of 1
                want, got = want[1:], got[1:]
            if got != want:
                label = "final_observation" if name == "final_observations" else name  # argument name
                raise ValueError(f"{label}: expected shape {want} for an episode of {length} steps, "
                                 f"got {got}")
        for name, arr in {**step, **episode}.items():
            self._pending.setdefault(name, []).append(arr)
        self._pending_steps += length
        self._returns.append(float(step["rewards"].sum()))
        if self._pending_steps >= self.chunk_steps:
            self._flush()

    def _flush(self) -> None:
        for name, parts in self._pending.items():
            if parts:
                self._group[name].append(np.concatenate(parts))
        self._n_steps += self._pending_steps
        self._n_episodes += len(self._pending.get("episode_starts", []))
        self._pending = {}
        self._pending_steps = 0

    def close(self, extra_attrs: dict[str, Any] | None = None) -> Path:
        """Finish the dataset, validate it and rename it into place; returns the final path."""
        if self._closed:
            return self.path
        self._flush()
        returns = np.asarray(self._returns, np.float64)
        attrs = self.spec.to_attrs()
        attrs.update(
            n_transitions=self._n_steps,
            n_episodes=self._n_episodes,
            return_mean=float(returns.mean()) if len(returns) else float("nan"),
            return_std=float(returns.std()) if len(returns) else float("nan"),
            created_by=f"logo {__version__}",
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            chunk_steps=self.chunk_steps,
        )
        attrs.update(extra_attrs or {})
        self._group.attrs.update(attrs)
        if self.validate:
            problems = validate_dataset(self.tmp_path)
            if problems:
                self.abort()
                raise DatasetError(str(self.path), problems)
        try:
            self._refuse_existing()  # something appeared at the target while writing
        except LogoError:
            self.abort()
            raise
        if self.path.exists():  # overwrite=True: keep the old dataset until the new one is in place
            trash = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.path, trash)
            os.rename(self.tmp_path, self.path)
            shutil.rmtree(trash)
        else:
            os.rename(self.tmp_path, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; nothing appears at ``path``."""
        self._closed = True
        shutil.rmtree(self.tmp_path, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary folders that writers of ``path`` killed mid-write left beside it.

    A temporary folder's name carries its writer's process id and host; those written on this host
    by a process that no longer runs are removed (other hosts' are left alone). Returns what was removed.
    """
    removed, host = [], socket.gethostname()
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        owner = tmp.name.rsplit(".tmp-", 1)[1].partition("-")[2]  # "pid@host"
        pid, _, owner_host = owner.partition("@")
        if pid.isdigit() and owner_host == host and not _process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
