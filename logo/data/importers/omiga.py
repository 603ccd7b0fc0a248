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

OMIGA's SMAC data is a FOLDER ``<map>/<quality>/`` of per-episode files, each written with ``torch.save``
and read with ``torch.load`` (``framework/utils.py (get_episode, load_data)``): a list over agents, each a
list of steps, each step ``[g, o, a, r, d, ava]`` (``framework/buffer.py (ReplayBuffer.insert)``):

* ``g [S]`` the agent-specific global state, ``o [O]`` the local observation, ``a`` a one-element list
  holding the action index, ``r`` an array whose ``r[0]`` is the reward (OMIGA's trainer uses agent 0's),
  ``d`` the done flag, ``ava [A]`` the available actions (0/1).
* No final observation is stored (OMIGA's loader uses the last step as its own successor), and the files
  do not say whether an episode ended by termination or by the time limit (SMAC reports both as done).

:func:`read` dispatches on ``src``: a folder is read as SMAC data, a file as MaMuJoCo HDF5.
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
         episode_limit: int | None = None) -> ImportSource:
    """Open OMIGA data (see the module docstring) as an :class:`ImportSource`: a folder as SMAC, a file as MaMuJoCo.

    Args:
        src: the ``<Robot>-v2-<conf>-<quality>.hdf5`` file (MaMuJoCo) or a ``<map>/<quality>/`` folder of
            per-episode ``torch.save`` files (SMAC).
        env: logo env family; default ``mamujoco`` (file) or ``smac`` (folder).
        scenario: scenario name; default from the file name (``HalfCheetah-v2-6x1-expert`` -> HalfCheetah-6x1)
            or the folder's parent name (``3m/good`` -> 3m).
        quality: quality label; default from the file name (expert, medium, medium-replay, medium-expert) or
            the folder's name (``3m/good`` -> good).
        episode_limit: the task's time limit. MaMuJoCo (default 1000): an episode of exactly this many steps
            counts as truncated, a shorter one as terminated, a longer one is an error. SMAC (default None):
            an episode whose last step has every agent done counts as terminated unless it is exactly
            ``episode_limit`` steps long (then truncated); one whose last step is not done is truncated.
    """
    if episode_limit is not None and (isinstance(episode_limit, bool) or not isinstance(episode_limit, int)
                                      or episode_limit < 1):
        raise ImportFormatError(f"episode_limit: expected a positive number of steps, got {episode_limit!r}")
    if Path(src).is_dir():
        return _read_smac(Path(src), env, scenario, quality, episode_limit)
    return _read_mamujoco(Path(src), env, scenario, quality, 1000 if episode_limit is None else episode_limit)


def _read_mamujoco(src: Path, env: str | None, scenario: str | None, quality: str | None,
                   episode_limit: int) -> ImportSource:
    """OMIGA's MaMuJoCo HDF5 file as an :class:`ImportSource` (see :func:`read`)."""
    where = str(src)
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


# ----------------------------------------------------------------------------------------------------------------
# SMAC: a folder of per-episode torch.save files of per-agent [g, o, a, r, d, ava] step lists

SMAC_FIELDS = ("g", "o", "a", "r", "d", "ava")


def natural_key(name: str) -> list:
    """Sort key that orders ``ep2`` before ``ep10`` (digits compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _field(raw: list, k: int, where: str) -> np.ndarray:
    """Item ``k`` of every step of every agent as one array [L, N, ...]."""
    name = SMAC_FIELDS[k]
    try:
        arr = np.stack([np.stack([_numpy(step[k]) for step in agent]) for agent in raw])  # [N, L, ...]
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ImportFormatError(f"{where}: {name} (step item {k}) has different shapes across steps or agents, or "
                                f"is not numeric ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                                ) from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImportFormatError(f"{where}: {name} (step item {k}) holds {arr.dtype} values, expected numbers")
    return np.swapaxes(arr, 0, 1)


def _load_smac_file(path: Path, dims: tuple[int, int, int, int] | None) -> dict[str, np.ndarray]:
    """One OMIGA SMAC episode file as arrays [L, N, ...]; every check names the file. ``dims``: the
    (N, O, S, A) every file must share (None for the first file)."""
    import torch

    where = str(path)
    try:
        raw = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # pickle, zip and torch errors of many kinds
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ImportFormatError(f"{where}: not a readable torch.save file ({type(exc).__name__}: {detail})") from exc
    if not isinstance(raw, (list, tuple)) or not raw:
        got = f"an empty {type(raw).__name__}" if isinstance(raw, (list, tuple)) else type(raw).__name__
        raise ImportFormatError(f"{where}: expected a list over agents of lists of [g, o, a, r, d, ava] steps, "
                                f"got {got}")
    for i, agent in enumerate(raw):
        if not isinstance(agent, (list, tuple)):
            raise ImportFormatError(f"{where}: agent {i}: expected a list of steps, got {type(agent).__name__}")
    lengths = [len(agent) for agent in raw]
    if len(set(lengths)) > 1:
        raise ImportFormatError(f"{where}: the agents' trajectories have different lengths {lengths} (OMIGA's "
                                "loader skips such episodes as invalid; logo refuses them rather than drop data "
                                "silently: remove the file to import the rest)")
    if lengths[0] == 0:
        raise ImportFormatError(f"{where}: the episode has no step")
    for i, agent in enumerate(raw):
        for t, step in enumerate(agent):
            if not isinstance(step, (list, tuple)) or len(step) != len(SMAC_FIELDS):
                got = f"{len(step)} items" if isinstance(step, (list, tuple)) else type(step).__name__
                raise ImportFormatError(f"{where}: agent {i}, step {t}: expected a 6-item list "
                                        f"[g, o, a, r, d, ava], got {got}")
    g, o, a, r, d, ava = (_field(raw, k, where) for k in range(len(SMAC_FIELDS)))
    length, n_agents = o.shape[:2]
    for name, value in (("g", g), ("o", o), ("ava", ava)):
        if value.ndim != 3 or value.shape[2] < 1:
            raise ImportFormatError(f"{where}: {name} has shape {list(value.shape[2:])} per step, expected a "
                                    "non-empty vector")
    a, r, d = (x.reshape(length, n_agents, -1) for x in (a, r, d))
    if a.shape[2] != 1:
        raise ImportFormatError(f"{where}: a holds {a.shape[2]} values per step, expected one action index")
    for name, value in (("r", r), ("d", d)):
        if value.shape[2] < 1:
            raise ImportFormatError(f"{where}: {name} is empty at every step, expected at least one value")
    have = (n_agents, o.shape[2], g.shape[2], ava.shape[2])
    if dims is not None and have != dims:
        raise ImportFormatError(f"{where}: (agents, o, g, ava) sizes {have} differ from the first file's {dims}")
    obs, state = o.astype(np.float32), g.astype(np.float32)
    reward, action = r[..., 0].astype(np.float32), a[..., 0]
    for name, value in (("o", obs), ("g", state), ("r", reward), ("a", action), ("ava", ava)):
        bad = np.argwhere(~np.isfinite(value.astype(np.float64)))
        if len(bad):
            raise ImportFormatError(f"{where}: {name} holds {len(bad)} NaN or infinite values, first at step "
                                    f"{int(bad[0][0])}, agent {int(bad[0][1])}")
    if not np.array_equal(action, np.round(action)):
        t, i = (int(x) for x in np.argwhere(action != np.round(action))[0])
        raise ImportFormatError(f"{where}: a holds the non-integer action {action[t, i]} at step {t}, agent {i}")
    action = action.astype(np.int64)
    if not np.isin(ava, (0, 1)).all():
        t, i = (int(x) for x in np.argwhere(~np.isin(ava, (0, 1)))[0][:2])
        raise ImportFormatError(f"{where}: ava holds values other than 0 and 1 at step {t}, agent {i}")
    avail = ava.astype(bool)
    n_actions = avail.shape[2]
    outside = (action < 0) | (action >= n_actions)
    if outside.any():
        t, i = (int(x) for x in np.argwhere(outside)[0])
        raise ImportFormatError(f"{where}: a holds action {int(action[t, i])} at step {t}, agent {i}, outside "
                                f"[0, {n_actions}) ({int(outside.sum())} such actions)")
    legal = np.take_along_axis(avail, action[..., None], 2)[..., 0]
    if not legal.all():
        t, i = (int(x) for x in np.argwhere(~legal)[0])
        raise ImportFormatError(f"{where}: a holds action {int(action[t, i])} at step {t}, agent {i}, which ava "
                                f"marks unavailable ({int((~legal).sum())} such actions)")
    return {"obs": obs, "state": state, "actions": action, "rewards": reward, "done": d[..., 0] != 0,
            "avail": avail}


def _read_smac(src: Path, env: str | None, scenario: str | None, quality: str | None,
               episode_limit: int | None) -> ImportSource:
    """OMIGA's SMAC folder of per-episode files as an :class:`ImportSource` (see :func:`read`)."""
    where = str(src)
    entries = sorted(src.iterdir(), key=lambda p: natural_key(p.name))
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    skipped = [p.name for p in entries if p not in files]
    if not files:
        raise ImportFormatError(f"{where}: the folder holds no episode file (OMIGA's SMAC data is one torch.save "
                                "file per episode)")
    dims = None
    plans: list[tuple[Path, int, bool]] = []  # (file, steps, terminated)
    lengths, partial_end, early_done = [], 0, 0
    state_differs, reward_differs = None, 0
    for path in files:
        ep = _load_smac_file(path, dims)
        done = ep["done"]
        length = len(done)
        if dims is None:
            dims = (done.shape[1], ep["obs"].shape[2], ep["state"].shape[2], ep["avail"].shape[2])
            state_differs = np.zeros(dims[2], bool)
        if episode_limit is not None and length > episode_limit:
            raise ImportFormatError(f"{path}: the episode has {length} steps, more than episode_limit="
                                    f"{episode_limit}; pass the map's time limit as episode_limit")
        ends_done = bool(done[-1].all())
        partial_end += int(done[-1].any() and not ends_done)
        early_done += int(done[:-1].any())
        state_differs |= (ep["state"] != ep["state"][:, :1]).any((0, 1))
        reward_differs += int(np.count_nonzero((ep["rewards"] != ep["rewards"][:, :1]).any(1)))
        lengths.append(length)
        plans.append((path, length, ends_done and (episode_limit is None or length < episode_limit)))
    n_agents, obs_dim, state_dim, n_actions = dims
    lengths = np.array(lengths)
    n_term = sum(term for _, _, term in plans)
    at_limit = sum(1 for _, n, _ in plans if episode_limit is not None and n == episode_limit)
    short = [p.name for p, n, term in plans if not term and n < 2]
    plans = [(p, n, term) for p, n, term in plans if term or n >= 2]
    if not plans:
        raise ImportFormatError(f"{where}: every episode is a truncated one-step episode: nothing to import")

    name = scenario or src.resolve().parent.name or src.resolve().name
    label = quality or src.resolve().name
    family = env or "smac"
    total = int(lengths.sum())
    mapping = [
        f"folder {src.name}: OMIGA SMAC, {len(files)} episode files (torch.load, natural file-name order), "
        f"{n_agents} agents, o {obs_dim}, g {state_dim}, ava {n_actions}; {total} steps, lengths "
        f"{int(lengths.min())}-{int(lengths.max())}",
        "each file: a list over agents of [g, o, a, r, d, ava] steps; every agent's trajectory must have the same "
        "length (OMIGA's loader skips other files as invalid; logo refuses them with an error naming the file)",
        "o -> observations [L, N, O], stacked over agents, kept as stored",
        "g of agent 0 -> state (og-marl takes agent 0's agent-specific state the same way); "
        + (f"agents' g differ in {int(state_differs.sum())} of {state_dim} features (agent-specific state, "
           "expected)" if state_differs.any() else "every agent's g equals agent 0's"),
        "a[0] -> actions (int64, discrete); checked in [0, A) and available per ava",
        "ava -> avail_actions (bool)",
        "r[0] of agent 0 -> rewards (the team reward, as OMIGA's trainer uses agent 0's); every agent's r[0] kept "
        "as agent_rewards; " + (f"agents' rewards differ on {reward_differs} steps" if reward_differs
                                else "every agent receives the same reward"),
        "episode end: the files have no time-limit flag; an episode whose last step has every agent's d set -> "
        + ("terminated" if episode_limit is None else
           f"terminated if shorter than episode_limit={episode_limit}, truncated at exactly that length "
           f"({at_limit})") + f"; a last step without every d set -> truncated ({len(lengths) - n_term} truncated, "
        f"{n_term} terminated); d before the last step is ignored (SMAC marks dead agents done; {early_done} "
        "episodes have such steps)",
        "the observation after an episode's last step is not stored: a terminated episode keeps all its steps and "
        "repeats its last observation, state and avail_actions as the final ones (never bootstrapped); a truncated "
        "episode gives up its last step, whose observation, state and avail_actions become the final ones",
    ]
    if partial_end:
        mapping.append(f"{partial_end} episodes end with only some agents' d set: read as truncated")
    if short:
        mapping.append(f"{len(short)} truncated one-step episodes dropped (no step left once the last is given up): "
                       + ", ".join(short[:5]) + (", ..." if len(short) > 5 else ""))
    if skipped:
        mapping.append(f"not episode files, ignored: {', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}")
    mapping.append(f"env family {family!r}{'' if env else ' (default)'}, scenario {name!r}"
                   f"{'' if scenario else ' (the folder parent name, OMIGA layout <map>/<quality>/)'}, quality "
                   f"{label!r}{'' if quality else ' (the folder name)'}")

    def episodes() -> Iterator[Episode]:
        for path, length, terminated in plans:
            ep = _load_smac_file(path, dims)
            if len(ep["rewards"]) != length:
                raise ImportFormatError(f"{path}: changed while importing ({len(ep['rewards'])} steps, was {length})")
            steps = slice(0, length if terminated else length - 1)
            state = ep["state"][:, 0]
            yield Episode(observations=ep["obs"][steps], state=state[steps], actions=ep["actions"][steps],
                          rewards=ep["rewards"][steps, 0], terminated=terminated,
                          final_observation=ep["obs"][-1], final_state=state[-1],
                          avail_actions=ep["avail"][steps], final_avail_actions=ep["avail"][-1],
                          agent_rewards=ep["rewards"][steps])

    spec = DatasetSpec(
        env_family=family, scenario=name, n_agents=int(n_agents), obs_dim=int(obs_dim), state_dim=int(state_dim),
        action_kind="discrete", n_actions=int(n_actions), quality=label, behaviour="OMIGA released data",
        source=f"OMIGA SMAC folder {src.name}",
        extra={} if episode_limit is None else {"episode_limit": episode_limit})
    return ImportSource(spec=spec, episodes=episodes, n_episodes=len(plans), mapping=mapping)
