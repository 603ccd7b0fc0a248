"""CFCQL's SMAC datasets (``thu-rllab/CFCQL``, ``discrete/offline_datasets/<map>_<quality>.h5``) into logo datasets.

One flat HDF5 file per map and quality, written by CFCQL's pymarl runners; every key is a root
dataset indexed ``[episode, t, ...]`` and padded to ``T + 1 = episode_limit + 1`` rows:

* ``state [E, T+1, S]``, ``obs [E, T+1, N, O]``, ``avail_actions [E, T+1, N, A]`` (int),
  ``actions [E, T+1, N, 1]`` (int64), ``reward [E, T+1, 1]`` (team reward),
  ``terminated [E, T+1, 1]`` (uint8), ``filled [E, T+1, 1]``, optionally ``probs [E, T+1, N, A]``.
* An episode of L steps fills rows ``0..L`` (``filled`` holds L + 1 ones): row t < L is the step
  (state, observation and legal actions before the action, the action, its reward), row L holds
  the observation, state and legal actions after the last step plus a dummy action; rows after L
  are zero padding.
* ``terminated[L - 1]`` is 1 when the battle ended and 0 when SMAC's time limit cut the episode
  (CFCQL stores ``terminated and not info["episode_limit"]``), so truncations are explicit.

Files are read episode by episode with h5py (the ``hdf5`` extra), so large files stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from logo.data.importers.base import (
    Episode,
    ImportFormatError,
    ImportSource,
    open_hdf5,
    require_keys,
    require_shape,
)
from logo.data.schema import DatasetSpec

# CFCQL's file-name suffixes, longest first so that "medium_replay" wins over "replay"; value: logo's label
QUALITIES = {"medium_replay": "medium-replay", "expert": "expert", "medium": "medium", "mixed": "mixed"}
STEP_KEYS = ("state", "obs", "avail_actions", "reward", "terminated", "filled")
DROPPED_KEYS = ("probs", "actions_onehot")


def scenario_and_quality(path: str | Path) -> tuple[str, str]:
    """``2s3z_medium_replay.h5`` -> ``("2s3z", "medium-replay")``; no known quality suffix: ``(stem, "unknown")``."""
    stem = Path(path).stem
    for suffix, label in QUALITIES.items():
        if stem.endswith("_" + suffix) and len(stem) > len(suffix) + 1:
            return stem[: -len(suffix) - 1], label
    return stem, "unknown"


def _dataset(f: Any, key: str, where: str) -> Any:
    import h5py

    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise ImportFormatError(f"{where}: {key} is an HDF5 group, expected a dataset at the file's root")
    return node


def read(src: Path, env: str | None = None, scenario: str | None = None,
         quality: str | None = None) -> ImportSource:
    """Open a CFCQL SMAC HDF5 file (see the module docstring) as an :class:`ImportSource`.

    Args:
        src: the ``<map>_<quality>.h5`` file.
        env: logo env family; default ``smac``.
        scenario: scenario name; default the file name before ``_<quality>`` (``5m_vs_6m_expert.h5`` -> 5m_vs_6m).
        quality: quality label; default from the file name (expert, medium, medium-replay, mixed).
    """
    where = str(src)
    with open_hdf5(src, "cfcql") as f:
        keys = list(f.keys())
        action_key = "actions" if "actions" in keys or "actions_onehot" not in keys else "actions_onehot"
        require_keys(keys, STEP_KEYS + (action_key,), where)
        ds = {key: _dataset(f, key, where) for key in STEP_KEYS + (action_key,)}
        require_shape("filled", ds["filled"], (None, None, 1), where)
        n_eps, rows = ds["filled"].shape[:2]
        require_shape("obs", ds["obs"], (n_eps, rows, None, None), where)
        n_agents, obs_dim = ds["obs"].shape[2:]
        require_shape("state", ds["state"], (n_eps, rows, None), where)
        require_shape("avail_actions", ds["avail_actions"], (n_eps, rows, n_agents, None), where)
        n_actions = ds["avail_actions"].shape[3]
        require_shape(action_key, ds[action_key], (n_eps, rows, n_agents, 1 if action_key == "actions" else n_actions),
                      where)
        for key in ("reward", "terminated"):
            require_shape(key, ds[key], (n_eps, rows, 1), where)
        if n_eps < 1 or rows < 2 or min(obs_dim, ds["state"].shape[2], n_actions) < 1:
            raise ImportFormatError(f"{where}: obs has shape {list(ds['obs'].shape)} and avail_actions "
                                    f"{list(ds['avail_actions'].shape)}: no episode, step or feature to import")
        state_dim = int(ds["state"].shape[2])
        filled = np.asarray(ds["filled"][:, :, 0])  # [E, T+1], small
        terminated = np.asarray(ds["terminated"][:, :, 0])  # [E, T+1]
    lengths = _episode_lengths(filled, where)
    ends_terminal = _terminations(terminated, lengths, where)

    default_scenario, default_quality = scenario_and_quality(src)
    limit = rows - 1
    n_term = int(ends_terminal.sum())
    n_trunc = n_eps - n_term
    at_limit = int((~ends_terminal & (lengths == limit)).sum())
    mapping = [
        f"file {src.name}: CFCQL SMAC HDF5, {n_eps} episodes padded to {rows} rows (time limit {limit} steps), "
        f"{n_agents} agents, obs {obs_dim}, state {state_dim}, {n_actions} actions",
        "filled: episode length L = filled.sum() - 1 (CFCQL marks L + 1 rows: the L steps and the row holding "
        "what follows the last step); rows after L are padding and dropped",
        "obs[t], state[t], avail_actions[t] for t < L -> observations, state, avail_actions (nonzero = legal); "
        "obs[L], state[L], avail_actions[L] -> final_observation, final_state, final_avail_actions",
        ("actions[t, :, 0] for t < L -> actions (int64); actions[L] is the dummy action CFCQL's runner chose "
         "after the episode ended and is dropped") if action_key == "actions" else
        ("no 'actions' key: actions[t] = argmax of actions_onehot[t] for t < L; actions_onehot[L] (dummy) dropped"),
        "reward[t, 0] for t < L -> rewards (SMAC's team reward, shared by all agents; no per-agent rewards); "
        "reward[L] (0) dropped",
        f"terminated[L - 1, 0] -> episode end: 1 = the battle ended (terminated), 0 = SMAC's time limit "
        f"(CFCQL stores terminated and not episode_limit) -> truncated; {n_term} terminated, {n_trunc} truncated "
        f"({at_limit} of them at L = {limit}, {n_trunc - at_limit} earlier)",
    ]
    if "probs" in keys:
        mapping.append("probs dropped (the behaviour policy's action probabilities; not part of logo's format)")
    if action_key == "actions" and "actions_onehot" in keys:
        mapping.append("actions_onehot dropped (the one-hot form of actions)")
    other = sorted(set(keys) - set(STEP_KEYS) - {"actions"} - set(DROPPED_KEYS))
    if other:
        mapping.append(f"unknown keys ignored: {', '.join(other)}")
    family = env or "smac"
    mapping.append(_labels(family, env, scenario or default_scenario, scenario, quality or default_quality, quality))

    def episodes() -> Iterator[Episode]:
        with open_hdf5(src, "cfcql") as f:
            for e in range(n_eps):
                yield _episode(f, e, int(lengths[e]), bool(ends_terminal[e]), action_key, n_actions, where)

    spec = DatasetSpec(
        env_family=family, scenario=scenario or default_scenario, n_agents=int(n_agents), obs_dim=int(obs_dim),
        state_dim=state_dim, action_kind="discrete", n_actions=int(n_actions),
        quality=quality or default_quality, behaviour="CFCQL released data",
        source=f"CFCQL SMAC HDF5 {src.name}", extra={"episode_limit": int(limit)})
    return ImportSource(spec=spec, episodes=episodes, n_episodes=n_eps, mapping=mapping)


def _labels(family: str, env: str | None, name: str, scenario: str | None, label: str, quality: str | None) -> str:
    """The mapping line saying where env family, scenario and quality came from."""
    renamed = ", CFCQL's medium_replay" if label == "medium-replay" else ""
    return (f"env family {family!r}{'' if env else ' (default)'}, scenario {name!r}"
            f"{'' if scenario else ' (from the file name)'}, quality {label!r}"
            f"{'' if quality else f' (from the file name{renamed})'}")


def _episode_lengths(filled: np.ndarray, where: str) -> np.ndarray:
    """[E] steps per episode from ``filled`` [E, T+1], which must be L + 1 ones followed by zeros, L >= 1."""
    n_filled = (filled != 0).sum(1)
    prefix = np.arange(filled.shape[1])[None] < n_filled[:, None]  # [E, T+1]
    bad = np.flatnonzero((filled != prefix).any(1))
    if len(bad):
        e = int(bad[0])
        raise ImportFormatError(f"{where}: filled of episode {e} is {filled[e].astype(int).tolist()}, expected "
                                f"ones followed by zeros ({len(bad)} episode(s) affected)")
    short = np.flatnonzero(n_filled < 2)
    if len(short):
        e = int(short[0])
        raise ImportFormatError(f"{where}: filled of episode {e} marks {int(n_filled[e])} row(s): an episode needs "
                                f"at least 2 (one step and the row after it) ({len(short)} episode(s) affected)")
    return n_filled - 1


def _terminations(terminated: np.ndarray, lengths: np.ndarray, where: str) -> np.ndarray:
    """[E] bool: terminated[L - 1]; a terminated flag before an episode's last step is a layout error."""
    rows = np.arange(terminated.shape[1])[None]
    early = (terminated != 0) & (rows < (lengths - 1)[:, None])
    if early.any():
        e, t = (int(i) for i in np.argwhere(early)[0])
        raise ImportFormatError(f"{where}: terminated is set at episode {e} step {t}, before the episode's last "
                                f"step {int(lengths[e]) - 1} (L = filled.sum() - 1 = {int(lengths[e])})")
    return terminated[np.arange(len(lengths)), lengths - 1] != 0


def _episode(f: Any, e: int, length: int, ends_terminal: bool, action_key: str, n_actions: int,
             where: str) -> Episode:
    """Episode ``e`` (L = ``length`` steps) read from the open file ``f``; raises ImportFormatError on bad values."""
    obs = np.asarray(f["obs"][e, : length + 1], np.float32)  # [L+1, N, O]
    state = np.asarray(f["state"][e, : length + 1], np.float32)  # [L+1, S]
    reward = np.asarray(f["reward"][e, :length, 0], np.float32)  # [L]
    for key, value in (("obs", obs), ("state", state), ("reward", reward)):
        bad = np.argwhere(~np.isfinite(value))
        if len(bad):
            raise ImportFormatError(f"{where}: {key} holds {len(bad)} NaN or infinite values in episode {e}, "
                                    f"first at step {int(bad[0][0])}")
    avail = np.asarray(f["avail_actions"][e, : length + 1]) != 0  # [L+1, N, A]
    raw = np.asarray(f[action_key][e, :length])  # [L, N, 1] or one-hot [L, N, A]
    if action_key == "actions_onehot":
        actions = raw.argmax(-1).astype(np.int64)  # [L, N]
    else:
        raw = raw[..., 0]
        if not np.issubdtype(raw.dtype, np.integer):
            odd = np.argwhere(~np.isfinite(raw) | (raw != np.round(raw)))
            if len(odd):
                t, i = (int(x) for x in odd[0])
                raise ImportFormatError(f"{where}: actions holds a non-integer value {raw[t, i]} at episode {e} "
                                        f"step {t} agent {i}")
        actions = raw.astype(np.int64)  # [L, N]
    out = np.argwhere((actions < 0) | (actions >= n_actions))
    if len(out):
        t, i = (int(x) for x in out[0])
        raise ImportFormatError(f"{where}: actions holds {int(actions[t, i])} at episode {e} step {t} agent {i}, "
                                f"outside [0, {n_actions}) (avail_actions has {n_actions} actions)")
    legal = np.take_along_axis(avail[:length], actions[..., None], -1)[..., 0]  # [L, N]
    illegal = np.argwhere(~legal)
    if len(illegal):
        t, i = (int(x) for x in illegal[0])
        raise ImportFormatError(f"{where}: actions holds {int(actions[t, i])} at episode {e} step {t} agent {i}, "
                                "which avail_actions marks illegal there")
    if not ends_terminal:
        stuck = np.flatnonzero(~avail[length].any(-1))
        if len(stuck):
            raise ImportFormatError(f"{where}: avail_actions of episode {e} marks no legal action for agent "
                                    f"{int(stuck[0])} after its last step (row {length}), but the episode was "
                                    "truncated, so the next legal actions are needed")
    return Episode(observations=obs[:length], state=state[:length], actions=actions, rewards=reward,
                   terminated=ends_terminal, final_observation=obs[length], final_state=state[length],
                   avail_actions=avail[:length], final_avail_actions=avail[length])
