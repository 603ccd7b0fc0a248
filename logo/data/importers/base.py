"""What every importer shares: one episode in logo's terms, splitting flat logs into episodes, the write.

An importer reads a published format into :class:`Episode` objects plus a
:class:`~logo.data.schema.DatasetSpec`; :func:`write_episodes` writes them with
:class:`~logo.data.writer.DatasetWriter` (atomic: nothing appears at the target unless the whole
import succeeds and validates) behind a progress bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logo.data.schema import DatasetSpec
from logo.data.writer import DatasetWriter
from logo.errors import LogoError


class ImportFormatError(LogoError):
    """A source does not have the layout its format promises; the message names the file and key."""


@dataclass
class Episode:
    """One episode of L steps in logo's terms (see ``logo.data.schema`` for the array layout)."""

    observations: np.ndarray  # [L, N, obs_dim]
    state: np.ndarray  # [L, state_dim]
    actions: np.ndarray  # [L, N] int64 or [L, N, action_dim] float32
    rewards: np.ndarray  # [L] team reward
    terminated: bool  # True: the environment ended the episode (no bootstrap); False: truncated
    final_observation: np.ndarray  # [N, obs_dim]
    final_state: np.ndarray  # [state_dim]
    avail_actions: np.ndarray | None = None  # [L, N, n_actions] bool
    final_avail_actions: np.ndarray | None = None  # [N, n_actions]
    agent_rewards: np.ndarray | None = None  # [L, N]

    def __len__(self) -> int:
        return len(self.rewards)


@dataclass
class ImportSource:
    """What an importer returns: the spec, the episodes (a generator function, read lazily) and a report.

    Attributes:
        spec: the dataset's spec (env family, scenario, dims, quality, source).
        episodes: called once; yields :class:`Episode` in order.
        n_episodes: number of episodes ``episodes`` will yield (for the progress bar).
        mapping: how the source was read, one line per decision (stored in the dataset's
            ``import`` attribute and printed): which key became what, how episode ends and
            truncations were derived, what was dropped and why.
        obs_mask: [N, obs_dim] bool real-feature mask, or None (every feature real).
    """

    spec: DatasetSpec
    episodes: Callable[[], Iterator[Episode]]
    n_episodes: int
    mapping: list[str]
    obs_mask: np.ndarray | None = None


def episode_slices(ends: np.ndarray) -> list[slice]:
    """Step ranges of the episodes of a flat log whose step t is an episode's last when ``ends[t]``.

    Steps after the last end (an episode the log cut off) are not returned; callers report them.
    """
    last = np.flatnonzero(ends)
    starts = np.concatenate([[0], last[:-1] + 1]) if len(last) else np.empty(0, np.int64)
    return [slice(int(s), int(e) + 1) for s, e in zip(starts, last)]


def require_keys(keys: Iterable[str], required: Iterable[str], source: str) -> None:
    """Raise an ImportFormatError naming every required key that ``source`` lacks."""
    missing = sorted(set(required) - set(keys))
    if missing:
        raise ImportFormatError(f"{source}: missing {', '.join(repr(k) for k in missing)} "
                                f"(found {', '.join(sorted(keys)) or 'nothing'})")


def require_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...], source: str) -> None:
    """Raise an ImportFormatError unless ``array`` has ``shape`` (None: any size on that axis)."""
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ImportFormatError(f"{source}: {name} has shape {list(array.shape)}, expected {want}")


def real_width(bad: np.ndarray) -> int:
    """Features before the trailing block of columns that are non-finite on every row (padding, e.g. the -inf
    that pads smaller agents' observations in OMAR tag/world data). ``bad``: [rows, features] bool."""
    padding = bad.all(0)  # [features]
    width = bad.shape[1]
    while width and padding[width - 1]:
        width -= 1
    return width


def require_finite(name: str, array: np.ndarray, source: str) -> None:
    """Raise an ImportFormatError if a float array holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ImportFormatError(f"{source}: {name} holds {bad} NaN or infinite values")


def write_episodes(out: str | Path, spec: DatasetSpec, episodes: Iterator[Episode], total: int | None,
                   overwrite: bool = False, progress: bool = True, obs_mask: np.ndarray | None = None,
                   attrs: dict[str, Any] | None = None) -> Path:
    """Write ``episodes`` as a validated logo dataset at ``out`` (atomically) and return its path."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="episode", desc="import", file=sys.stderr, dynamic_ncols=True)
    count = 0
    with DatasetWriter(out, spec, overwrite=overwrite) as writer:
        if obs_mask is not None:
            writer.set_obs_mask(obs_mask)
        for episode in episodes:
            writer.add_episode(
                observations=episode.observations, state=episode.state, actions=episode.actions,
                rewards=episode.rewards, terminated=episode.terminated,
                final_observation=episode.final_observation, final_state=episode.final_state,
                avail_actions=episode.avail_actions, final_avail_actions=episode.final_avail_actions,
                agent_rewards=episode.agent_rewards)
            count += 1
            if bar is not None:
                bar.update(1)
        if count == 0:
            raise ImportFormatError("the source holds no complete episode")
        path = writer.close(extra_attrs={"import": attrs or {}})
    if bar is not None:
        bar.close()
    return path


def open_hdf5(src: Path, fmt: str) -> Any:
    """Open ``src`` read-only with h5py; a missing h5py, a folder or a non-HDF5 file give clear errors."""
    try:
        import h5py
    except ImportError as exc:
        raise LogoError(f"the '{fmt}' importer needs the Python package 'h5py', which is not installed; "
                        "install it with: pip install 'logo[hdf5]'") from exc
    if src.is_dir():
        raise ImportFormatError(f"{src}: expected an HDF5 file, got a folder")
    try:
        return h5py.File(src, "r")
    except OSError as exc:
        raise ImportFormatError(f"{src}: not a readable HDF5 file ({exc})") from exc
