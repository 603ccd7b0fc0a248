"""OMIGA's MaMuJoCo datasets (``ZhengYinan-AIR/OMIGA``, ``<Robot>-v2-<conf>-<quality>.hdf5``) into logo datasets.

One flat HDF5 file per task and quality, rows laid end to end over all episodes (``M`` rows):

* ``o [M, N, O]`` per-agent observations, ``s [M, N, S]`` per-agent states, ``a [M, N, A]``
  continuous actions in [-1, 1], ``r [M]`` or ``[M, 1]`` the shared team reward, ``d [M, 1]`` or ``[M]``.
* OMIGA's loader takes row t as a start when ``d[t] == 0`` and its successor from row t + 1, so every
  episode is stored as its steps (``d = 0``) followed by one delimiter row (``d = 1``) that holds the
  observation and state after the last step; that row's ``a`` and ``r`` mean nothing. This layout is
  inferred from the loader; the raw files were not inspected.
* The files do not say whether an episode ended by termination or by the time limit; an episode of
  exactly ``episode_limit`` steps (1000 in OMIGA and og-marl) is read as truncated, a shorter one as
  terminated.

Not supported yet: OMIGA's SMAC data (a folder of per-episode ``torch.save`` files of per-agent
``[g, o, a, r, d, ava]`` lists, with no final observation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from logo.data.importers.base import (
    Episode,
    ImportFormatError,
    ImportSource,
    episode_slices,
    open_hdf5,
    require_keys,
    require_shape,
)
from logo.data.schema import DatasetSpec

# file-name suffixes, longest first; value: logo's label
QUALITIES = {"medium-replay": "medium-replay", "medium_replay": "medium-replay", "medium-expert": "medium-expert",
             "medium_expert": "medium-expert", "expert": "expert", "medium": "medium", "random": "random"}
KEYS = ("s", "o", "a", "r", "d")
SCAN_ROWS = 65536  # rows per block when scanning whole arrays


def scenario_and_quality(path: str | Path) -> tuple[str, str]:
    """``HalfCheetah-v2-6x1-expert.hdf5`` -> ``("HalfCheetah-6x1", "expert")``: logo's ROBOT-PARTITION name
    without the gym version; no known quality suffix: quality ``"unknown"``."""
    stem = Path(path).stem
    label = "unknown"
    for suffix, name in QUALITIES.items():
        if len(stem) > len(suffix) + 1 and stem[-len(suffix) - 1] in "-_" and stem.endswith(suffix):
            stem, label = stem[: -len(suffix) - 1], name
            break
    parts = [p for p in stem.split("-") if not re.fullmatch(r"v\d+", p)]
    return "-".join(parts) or stem, label


def read(src: Path, env: str | None = None, scenario: str | None = None, quality: str | None = None,
         episode_limit: int = 1000) -> ImportSource:
    """Open an OMIGA MaMuJoCo HDF5 file (see the module docstring) as an :class:`ImportSource`.

    Args:
        src: the ``<Robot>-v2-<conf>-<quality>.hdf5`` file.
        env: logo env family; default ``mamujoco``.
        scenario: scenario name; default from the file name (``HalfCheetah-v2-6x1-expert`` -> HalfCheetah-6x1).
        quality: quality label; default from the file name (expert, medium, medium-replay, medium-expert).
        episode_limit: the task's time limit; an episode of exactly this many steps counts as truncated,
            a shorter one as terminated, a longer one is an error.
    """
    where = str(src)
    if isinstance(episode_limit, bool) or not isinstance(episode_limit, int) or episode_limit < 1:
        raise ImportFormatError(f"episode_limit: expected a positive number of steps, got {episode_limit!r}")
    with open_hdf5(src, "omiga") as f:
        keys = list(f.keys())
        require_keys(keys, KEYS, where)
        ds = {key: f[key] for key in KEYS}
        for key, node in ds.items():
            if not hasattr(node, "shape"):
                raise ImportFormatError(f"{where}: {key} is an HDF5 group, expected a dataset at the file's root")
        require_shape("o", ds["o"], (None, None, None), where)
        rows, n_agents, obs_dim = ds["o"].shape
        require_shape("s", ds["s"], (rows, n_agents, None), where)
        require_shape("a", ds["a"], (rows, n_agents, None), where)
        for key in ("r", "d"):
            if ds[key].shape not in ((rows,), (rows, 1)):
                raise ImportFormatError(f"{where}: {key} has shape {list(ds[key].shape)}, expected [{rows}] or "
                                        f"[{rows}, 1] (one value per row of o)")
        state_dim, action_dim = int(ds["s"].shape[2]), int(ds["a"].shape[2])
        if min(rows, n_agents, obs_dim, state_dim, action_dim) < 1:
            raise ImportFormatError(f"{where}: o has shape {list(ds['o'].shape)}, s {list(ds['s'].shape)}, "
                                    f"a {list(ds['a'].shape)}: no row, agent or feature to import")
        done = np.asarray(ds["d"][...]).reshape(rows)  # [M]
        reward = np.asarray(ds["r"][...], np.float32).reshape(rows)  # [M]
        odd = np.flatnonzero((done != 0) & (done != 1))
        if len(odd):
            raise ImportFormatError(f"{where}: d holds {float(done[odd[0]])} at row {int(odd[0])}, expected 0 or 1 "
                                    f"({len(odd)} such rows)")
        plans, tail = _episodes(done != 0, where)
        is_step = np.zeros(rows, bool)  # rows that are steps of complete episodes
        is_final = np.zeros(rows, bool)  # their delimiter rows
        for steps in plans:
            is_step[steps] = True
            is_final[steps.stop] = True
        lengths = np.array([s.stop - s.start for s in plans])
        long = np.flatnonzero(lengths > episode_limit)
        if len(long):
            s = plans[int(long[0])]
            raise ImportFormatError(f"{where}: d: episode {int(long[0])} (rows {s.start}-{s.stop}) has "
                                    f"{s.stop - s.start} steps, more than episode_limit={episode_limit}; pass the "
                                    "task's time limit as episode_limit")
        bad = np.flatnonzero(~np.isfinite(reward) & is_step)
        if len(bad):
            raise ImportFormatError(f"{where}: r holds {len(bad)} NaN or infinite values, first at row {int(bad[0])}")
        clipped, differs = _scan(ds["a"], ds["s"], is_step, is_step | is_final, where)

    default_scenario, default_quality = scenario_and_quality(src)
    name, label = scenario or default_scenario, quality or default_quality
    truncated = int((lengths == episode_limit).sum())
    n_values = int(lengths.sum()) * n_agents * action_dim
    mapping = [
        f"file {src.name}: OMIGA MaMuJoCo HDF5, {rows} rows, {n_agents} agents, o {obs_dim}, s {state_dim}, "
        f"a {action_dim} (continuous)",
        "episodes: each is a run of d = 0 rows (its steps) followed by one d = 1 delimiter row holding the "
        "observation and state after the last step (layout inferred from OMIGA's loader, which reads the next "
        f"observation from row t + 1); {len(plans)} episodes, {int(lengths.sum())} steps, lengths "
        f"{int(lengths.min())}-{int(lengths.max())}",
        "o[t] -> observations [N, O], kept as stored: OMIGA's MaMuJoCo environment standardises each agent's "
        "vector and appends a one-hot agent id (og-marl relies on this too); nothing is stripped, so obs_dim "
        "includes the id; o of the delimiter row -> final_observation",
        _state_line(differs, state_dim),
        "a[t] -> actions, bounds [-1, 1]; a of the delimiter row is meaningless and dropped; "
        + (f"{clipped} of {n_values} action values lay outside [-1, 1] and were clipped (og-marl clips OMIGA "
           "actions the same way)" if clipped else "every action value lies in [-1, 1] (nothing clipped)"),
        "r[t] -> rewards (the shared team reward; no per-agent rewards); r of the delimiter row dropped",
        f"episode end: the file does not record termination vs time limit; an episode of exactly "
        f"episode_limit={episode_limit} steps -> truncated ({truncated}), a shorter one -> terminated "
        f"({len(plans) - truncated}); HalfCheetah never terminates early, Hopper and Ant can",
    ]
    if name.split("-")[0] == "HalfCheetah" and truncated < len(plans):
        mapping.append(f"warning: {len(plans) - truncated} HalfCheetah episodes are shorter than episode_limit="
                       f"{episode_limit} although HalfCheetah never terminates; they are imported as terminated "
                       "(check episode_limit)")
    if tail:
        mapping.append(f"the last {tail} rows after the final d = 1 row form no complete episode: dropped")
    other = sorted(set(keys) - set(KEYS))
    if other:
        mapping.append(f"unknown keys ignored: {', '.join(other)}")
    family = env or "mamujoco"
    mapping.append(f"env family {family!r}{'' if env else ' (default)'}, scenario {name!r}"
                   f"{'' if scenario else ' (from the file name, without the gym version)'}, quality {label!r}"
                   f"{'' if quality else ' (from the file name)'}")

    def episodes() -> Iterator[Episode]:
        with open_hdf5(src, "omiga") as f:
            for e, steps in enumerate(plans):
                length = steps.stop - steps.start
                rows_in = slice(steps.start, steps.stop + 1)  # the steps and the delimiter row
                obs = np.asarray(f["o"][rows_in], np.float32)  # [L+1, N, O]
                bad = np.argwhere(~np.isfinite(obs))
                if len(bad):
                    raise ImportFormatError(f"{where}: o holds {len(bad)} NaN or infinite values in episode {e}, "
                                            f"first at row {steps.start + int(bad[0][0])}")
                state = np.asarray(f["s"][rows_in, 0], np.float32)  # [L+1, S], agent 0's row
                actions = np.clip(np.asarray(f["a"][steps], np.float32), -1.0, 1.0)  # [L, N, A]
                yield Episode(observations=obs[:length], state=state[:length], actions=actions,
                              rewards=reward[steps], terminated=length < episode_limit,
                              final_observation=obs[length], final_state=state[length])

    spec = DatasetSpec(
        env_family=family, scenario=name, n_agents=int(n_agents), obs_dim=int(obs_dim), state_dim=state_dim,
        action_kind="continuous", action_dim=action_dim, action_low=[-1.0] * action_dim,
        action_high=[1.0] * action_dim, quality=label, behaviour="OMIGA released data",
        source=f"OMIGA MaMuJoCo HDF5 {src.name}", extra={"episode_limit": episode_limit})
    return ImportSource(spec=spec, episodes=episodes, n_episodes=len(plans), mapping=mapping)


def _episodes(delimiter: np.ndarray, where: str) -> tuple[list[slice], int]:
    """Step rows of every complete episode (the delimiter row is each slice's ``stop``) and the trailing row count."""
    plans = [slice(s.start, s.stop - 1) for s in episode_slices(delimiter)]
    empty = [s for s in plans if s.stop == s.start]
    if empty:
        row = empty[0].stop
        raise ImportFormatError(f"{where}: d marks row {row} as an episode delimiter (d = 1) right after "
                                f"{'another delimiter' if row else 'the start of the file'}: an episode needs at "
                                f"least one d = 0 row before its delimiter ({len(empty)} such rows)")
    if not plans:
        raise ImportFormatError(f"{where}: d has no row with d = 1, so the file holds no complete episode")
    tail = len(delimiter) - (plans[-1].stop + 1)
    return plans, tail


def _scan(actions, states, is_step: np.ndarray, used: np.ndarray, where: str) -> tuple[int, np.ndarray]:
    """Stream ``a`` and ``s`` in blocks: NaN checks, the number of action values outside [-1, 1] on step rows,
    and [S] bool of state features where some agent's ``s`` row differs from agent 0's on used rows."""
    clipped = 0
    differs = np.zeros(states.shape[2], bool)
    for start in range(0, len(is_step), SCAN_ROWS):
        block = slice(start, start + SCAN_ROWS)
        a = np.asarray(actions[block], np.float32)[is_step[block]]  # [rows, N, A]
        s = np.asarray(states[block], np.float32)[used[block]]  # [rows, N, S]
        for key, value, mask in (("a", a, is_step[block]), ("s", s, used[block])):
            bad = np.argwhere(~np.isfinite(value))
            if len(bad):
                row = start + int(np.flatnonzero(mask)[bad[0][0]])
                raise ImportFormatError(f"{where}: {key} holds NaN or infinite values, first at row {row}")
        clipped += int(((a < -1) | (a > 1)).sum())
        differs |= (s != s[:, :1]).any((0, 1))
    return clipped, differs


def _state_line(differs: np.ndarray, state_dim: int) -> str:
    if not differs.any():
        return "s[t, 0] (agent 0's row) -> state; every agent's s row is equal to agent 0's; s of the delimiter " \
               "row -> final_state"
    idx = np.flatnonzero(differs)
    shown = ", ".join(str(int(i)) for i in idx[:12]) + (", ..." if len(idx) > 12 else "")
    return (f"s[t, 0] (agent 0's row, as og-marl takes it) -> state; agents' s rows differ in {len(idx)} of "
            f"{state_dim} features (indices {shown}; expected: OMIGA's per-agent state ends with the agent id); "
            "s of the delimiter row -> final_state")
