"""OMAR's per-agent npy datasets (``ling-pan/OMAR``) into logo datasets.

Layout (``utils/buffer.py (ReplayBuffer.load_batch_data)``): one folder
``<dataset_dir>/<env_id>/<quality>/seed_<k>_data/`` holding, for every agent ``i`` (``0..K-1``):

* ``obs_{i}.npy`` ``[M, O_i]`` and ``next_obs_{i}.npy`` ``[M, O_i]``: observation before and after step t;
* ``acs_{i}.npy`` ``[M, A_i]``: continuous actions (MPE: OMAR's ``Box(dim_p)`` force after a tanh policy);
* ``rews_{i}.npy`` ``[M]``, ``dones_{i}.npy`` ``[M]``: per-agent reward and done flag;
* HalfCheetah only: ``states_{i}.npy`` and ``next_states_{i}.npy`` ``[M, S]``, the global state.

``env_id`` is ``simple_spread``, ``simple_tag``, ``simple_world`` or ``HalfCheetah-v2``. MPE dones are all
zero (no done callback): episodes are consecutive fixed 25-step chunks ending by the time limit.
HalfCheetah dones mark episode ends; an end after exactly the time limit (1000 steps) is a truncation.
Tag and World hold files for the prey too (OMAR loads every env agent, trains only the predators), so
``agents`` selects the team to import. See ``docs/importers.md`` and the module's ``read``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from logo.data.importers.base import Episode, ImportFormatError, ImportSource, episode_slices, real_width
from logo.data.schema import DatasetSpec
from logo.errors import LogoError

# OMAR env_id -> (logo env family, logo scenario name); logo's MPE adapter uses the mpe2 names
ENV_IDS = {
    "simple_spread": ("mpe", "simple_spread_v3"),
    "simple_tag": ("mpe", "simple_tag_v3"),
    "simple_world": ("mpe", "simple_world_comm_v3"),
    "HalfCheetah-v2": ("mamujoco", "HalfCheetah-2x3"),
}
DEFAULT_EPISODE_LENGTH = {"mpe": 25, "mamujoco": 1000}  # OMAR's --episode_length 25; MaMuJoCo episode_limit
AGENT_FILES = ("obs", "acs", "rews", "next_obs", "dones")
STATE_FILES = ("states", "next_states")
FILE_PATTERN = re.compile(r"^(next_obs|next_states|obs|acs|rews|dones|states)_(\d+)\.npy$")
ACTION_BOUND = 1.0  # OMAR's MPE force (tanh policy) and MaMuJoCo's HalfCheetah torques lie in [-1, 1]
TOLERANCE = 1e-5  # largest accepted |next_obs[t] - obs[t+1]| inside an episode
TeamReward = Literal["mean", "sum", "agent0"]


def read(src: Path, env: str | None = None, scenario: str | None = None, quality: str | None = None,
         agents: list[int] | None = None, episode_length: int | None = None,
         team_reward: TeamReward | None = None) -> ImportSource:
    """Read one OMAR ``seed_<k>_data`` folder.

    Args:
        src: the ``<env_id>/<quality>/seed_<k>_data`` folder.
        env: logo env family (default from ``env_id``: ``mpe`` or ``mamujoco``).
        scenario: logo scenario name (default from ``env_id``, e.g. ``simple_tag`` -> ``simple_tag_v3``).
        quality: quality label (default the ``<quality>`` folder name, e.g. ``medium-replay``).
        agents: agent indices to import, in this order (default all; e.g. ``[0, 1, 2]``, the predators of
            Tag/World).
        episode_length: time limit in steps (default 25 for MPE, 1000 for MaMuJoCo): MPE's chunk length;
            a MaMuJoCo episode of exactly this length is truncated, a shorter one terminated.
        team_reward: how the per-agent rewards become the team reward (default ``agent0`` for Tag and
            World, as OMAR evaluates them, ``mean`` otherwise); per-agent rewards are kept as
            ``agent_rewards``.
    """
    src = Path(src)
    if not src.is_dir():
        raise ImportFormatError(f"{src}: not a folder (expected OMAR's <env_id>/<quality>/seed_<k>_data folder "
                                "of per-agent npy files)")
    env_id = src.parent.parent.name
    family, scenario, env_note = _environment(env_id, env, scenario)
    quality = quality or src.parent.name or "unknown"
    if episode_length is None:
        if family not in DEFAULT_EPISODE_LENGTH:
            raise LogoError(f"episode_length: no default for env family {family!r}; pass the time limit in steps")
        episode_length = DEFAULT_EPISODE_LENGTH[family]
    if isinstance(episode_length, bool) or not isinstance(episode_length, (int, np.integer)) or episode_length < 1:
        raise LogoError(f"episode_length: expected a positive number of steps, got {episode_length!r}")
    episode_length = int(episode_length)
    if team_reward is None:
        team_reward = "agent0" if scenario in ("simple_tag_v3", "simple_world_comm_v3") else "mean"
    if team_reward not in ("mean", "sum", "agent0"):
        raise LogoError(f"team_reward: expected 'mean', 'sum' or 'agent0', got {team_reward!r}")

    n_found = _discover(src)
    selected = _select(agents, n_found)
    has_states = (src / "states_0.npy").exists() or family == "mamujoco"
    files = AGENT_FILES + (STATE_FILES if has_states else ())
    arrays = {(name, i): _load(src / f"{name}_{i}.npy") for i in range(n_found) for name in files}
    n_steps = _check_shapes(src, arrays, n_found, has_states)
    mapping = [f"OMAR {env_id}/{src.parent.name}/{src.name}: {n_found} agents' files (indices 0..{n_found - 1}), "
               f"{n_steps} steps each", env_note]
    others = [i for i in range(n_found) if i not in selected]
    mapping.append(f"agents: files of agent {selected} become logo agents {list(range(len(selected)))}"
                   + (f"; agent(s) {others} not imported as agents"
                      + ("" if has_states else " (their observations still enter the global state)")
                      if others else ""))

    # observations: trailing features non-finite on every step are padding; anything else must be finite
    in_state = list(range(n_found)) if not has_states else selected  # agents whose observations are read
    widths = {i: _real_width(src, arrays, i) for i in in_state}
    obs_dim = max(widths[i] for i in selected)
    obs_mask = np.zeros((len(selected), obs_dim), bool)
    for n, i in enumerate(selected):
        obs_mask[n, :widths[i]] = True
    sizes = {i: arrays[("obs", i)].shape[1] for i in in_state}
    padded = {i: sizes[i] - widths[i] for i in in_state if widths[i] < sizes[i]}
    if padded:
        mapping.append("trailing features non-finite on every step are padding, dropped: "
                       + ", ".join(f"obs_{i}.npy {sizes[i]} -> {widths[i]} features" for i in sorted(padded)))
    mapping.append(f"observations: obs_i.npy -> observations[:, n] ({obs_dim} features; real sizes "
                   f"{[widths[i] for i in selected]}"
                   + ("; shorter agents zero-padded, obs_mask marks the real features)"
                      if not obs_mask.all() else ")"))

    # episodes
    dones = np.stack([_finite(src, arrays, "dones", i) != 0 for i in selected], 1)  # [M, N]
    split = dones.all(1)
    disagree = int((dones.any(1) & ~split).sum())
    if disagree:
        mapping.append(f"{disagree} steps where only some selected agents' dones are 1: not episode ends "
                       "(an episode ends where all are 1)")
    if family == "mpe" and not split.any():
        if n_steps % episode_length:
            raise ImportFormatError(f"{src / 'obs_0.npy'}: {n_steps} steps is not a multiple of episode_length "
                                    f"{episode_length}, and dones_*.npy mark no episode end (OMAR's MPE data is "
                                    "consecutive fixed-length episodes); pass the right episode_length")
        slices = [slice(s, s + episode_length) for s in range(0, n_steps, episode_length)]
        mapping.append(f"episodes: dones_*.npy are all 0 (MPE has no done callback), so the {n_steps} steps are "
                       f"{len(slices)} consecutive {episode_length}-step episodes")
    else:
        slices = episode_slices(split)
        mapping.append(f"episodes: split where the dones of all selected agents are 1 ({len(slices)} episodes)")
        tail = n_steps - (slices[-1].stop if slices else 0)
        if tail:
            mapping.append(f"the last {tail} steps after the final episode end form no complete episode: dropped")
        if not slices:
            raise ImportFormatError(f"{src / 'dones_0.npy'}: no step where all selected agents' dones are 1, "
                                    "so the source holds no complete episode")
    lengths = np.array([s.stop - s.start for s in slices])
    if family == "mpe":
        terminated = np.zeros(len(slices), bool)
        odd = int((lengths != episode_length).sum())
        mapping.append("every episode is truncated (MPE episodes end only by the time limit)"
                       + (f"; {odd} episodes are not {episode_length} steps long" if odd else ""))
    else:
        terminated = lengths != episode_length
        mapping.append(f"an episode of exactly episode_length={episode_length} steps is truncated (time limit), "
                       f"a shorter one terminated: {int((~terminated).sum())} truncated, "
                       f"{int(terminated.sum())} terminated")
    last = np.array([s.stop - 1 for s in slices])  # [E] last step of each episode
    inside = np.ones(n_steps, bool)  # steps whose successor is in the same kept episode
    inside[last] = False
    inside[slices[-1].stop:] = False

    deviation = max(_check_next(src, arrays, "obs", i, widths[i], inside) for i in in_state)
    mapping.append(f"final observation: next_obs_i.npy at each episode's last step; inside episodes "
                   f"next_obs_i[t] == obs_i[t+1] holds (max deviation {deviation:.3g}, tolerance {TOLERANCE:g})")

    obs = _pad([arrays[("obs", i)] for i in selected], [widths[i] for i in selected], obs_dim)  # [M, N, O]
    final_obs = _pad([arrays[("next_obs", i)][last] for i in selected], [widths[i] for i in selected], obs_dim)

    # global state
    if has_states:
        state, next_state = _states(src, arrays, n_found, inside, mapping)
        final_state = next_state[last]
    else:
        state = np.concatenate([np.asarray(arrays[("obs", i)][:, :widths[i]], np.float32) for i in in_state], 1)
        final_state = np.concatenate([np.asarray(arrays[("next_obs", i)][last, :widths[i]], np.float32)
                                      for i in in_state], 1)
        mapping.append(f"state: no states_i.npy (MPE): the concatenation of agents {in_state}'s observations "
                       f"(unpadded, in index order; {state.shape[1]} features), as logo's MPE adapter forms it "
                       "(mpe2's env.state(): every agent's observation, scripted ones included); final state "
                       "likewise from next_obs_i.npy")

    # actions
    acts = [_finite(src, arrays, "acs", i) for i in selected]
    action_dims = {i: a.shape[1] for i, a in zip(selected, acts)}
    if len(set(action_dims.values())) > 1:
        first = selected[0]
        odd = next(i for i in selected if action_dims[i] != action_dims[first])
        raise ImportFormatError(f"{src / f'acs_{odd}.npy'}: {action_dims[odd]} action dimensions, expected "
                                f"{action_dims[first]} like acs_{first}.npy (logo needs one action_dim)")
    action_dim = action_dims[selected[0]]
    actions = np.stack([np.asarray(a, np.float32) for a in acts], 1)  # [M, N, A]
    outside = int((np.abs(actions) > ACTION_BOUND).sum())
    np.clip(actions, -ACTION_BOUND, ACTION_BOUND, out=actions)
    mapping.append(f"actions: acs_i.npy -> continuous actions [{action_dim}], bounds [-1, 1] ("
                   + ("OMAR's Box(dim_p) force after its tanh policy" if family == "mpe" else "MaMuJoCo torques")
                   + f"); {outside} values outside clipped")
    if family == "mpe":
        mapping.append("note: logo's MPE adapter takes mpe2's 5-dimensional [0, 1] continuous actions, OMAR's are "
                       "the 2-dimensional force in [-1, 1] (mpe2's a[2]-a[1], a[4]-a[3]); `logo data check` "
                       "reports the difference")

    if family == "mamujoco":
        mapping.append("note: OMAR ran HalfCheetah-v2 (mujoco-py) 2x3 with agent_obsk=0; make logo's MaMuJoCo "
                       "adapter with agent_obsk=0 for matching observations")

    # rewards
    agent_rewards = np.stack([np.asarray(_finite(src, arrays, "rews", i), np.float32) for i in selected], 1)
    if team_reward == "agent0":
        rewards = agent_rewards[:, 0].copy()
        how = f"agent {selected[0]}'s reward (rews_{selected[0]}.npy)"
    else:
        rewards = getattr(agent_rewards.astype(np.float64), team_reward)(1).astype(np.float32)
        how = f"the {team_reward} of the selected agents' rews_i.npy"
    same = bool((agent_rewards == agent_rewards[:, :1]).all())
    as_omar = team_reward == _omar_eval(scenario) and (team_reward != "agent0" or selected[0] == 0)
    mapping.append(f"team reward: {how}" + (" (as OMAR evaluates this env)" if as_omar else "")
                   + "; per-agent rewards kept as agent_rewards"
                   + (" (identical across agents)" if same else ""))
    if family == "mpe":
        mapping.append("note: logo's MPE adapter sums the team's rewards; returns of this dataset use the "
                       f"{team_reward} rule above")

    spec = DatasetSpec(
        env_family=family, scenario=scenario, n_agents=len(selected), obs_dim=obs_dim,
        state_dim=int(state.shape[1]), action_kind="continuous", action_dim=int(action_dim),
        action_low=[-ACTION_BOUND] * action_dim, action_high=[ACTION_BOUND] * action_dim,
        quality=quality, behaviour="OMAR dataset", source=f"OMAR {src}",
        extra={"omar_env_id": env_id, "omar_folder": src.name, "agents": selected, "team_reward": team_reward,
               "episode_length": episode_length})

    def episodes() -> Iterator[Episode]:
        for e, s in enumerate(slices):
            yield Episode(observations=obs[s], state=state[s], actions=actions[s], rewards=rewards[s],
                          terminated=bool(terminated[e]), final_observation=final_obs[e],
                          final_state=final_state[e], agent_rewards=agent_rewards[s])

    return ImportSource(spec=spec, episodes=episodes, n_episodes=len(slices), mapping=mapping,
                        obs_mask=None if obs_mask.all() else obs_mask)


def _environment(env_id: str, env: str | None, scenario: str | None) -> tuple[str, str, str]:
    """(family, scenario, mapping line) from the folder's env_id and the overrides."""
    known = ENV_IDS.get(env_id)
    if known is None and (env is None or scenario is None):
        raise ImportFormatError(f"env_id {env_id!r} (the folder two levels above the seed folder) is not one of "
                                f"OMAR's {', '.join(ENV_IDS)}; pass env and scenario")
    family = env or known[0]  # type: ignore[index]
    scenario = scenario or known[1]  # type: ignore[index]
    overridden = known is None or (family, scenario) != known
    return family, scenario, (f"environment: OMAR {env_id} -> {family} {scenario}"
                              + (" (given)" if overridden else ""))


def _omar_eval(scenario: str) -> str | None:
    """The team reward OMAR's ``eval_policy`` reports for a scenario (MPE only)."""
    return {"simple_spread_v3": "mean", "simple_tag_v3": "agent0", "simple_world_comm_v3": "agent0"}.get(scenario)


def _discover(src: Path) -> int:
    """Number of agents K, after checking every agent 0..K-1 has all its files."""
    found = {}
    for path in src.iterdir():
        match = FILE_PATTERN.match(path.name)
        if match:
            found.setdefault(int(match.group(2)), set()).add(match.group(1))
    if not found:
        raise ImportFormatError(f"{src}: no OMAR agent files (expected obs_0.npy, acs_0.npy, rews_0.npy, "
                                "next_obs_0.npy, dones_0.npy, ... for every agent)")
    n_found = max(found) + 1
    for i in range(n_found):
        for name in AGENT_FILES:
            if name not in found.get(i, set()):
                raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: missing (OMAR stores "
                                        f"{', '.join(f'{n}_i.npy' for n in AGENT_FILES)} for every agent i; "
                                        f"files here name agents up to {n_found - 1})")
    return n_found


def _select(agents: list[int] | None, n_found: int) -> list[int]:
    if agents is None:
        return list(range(n_found))
    chosen = list(agents)
    if (not chosen or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in chosen)
            or len(set(chosen)) != len(chosen) or min(chosen) < 0 or max(chosen) >= n_found):
        raise LogoError(f"agents: expected distinct agent indices in 0..{n_found - 1}, got {agents!r}")
    return [int(i) for i in chosen]


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImportFormatError(f"{path}: missing (expected states_i.npy and next_states_i.npy for every agent i, "
                                "as OMAR's HalfCheetah data stores them)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError for corrupt or pickled files
        raise ImportFormatError(f"{path}: not a readable npy array ({type(exc).__name__}: {exc})") from exc
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise ImportFormatError(f"{path}: expected a numeric array, got dtype {getattr(array, 'dtype', '?')}")
    return array


def _check_shapes(src: Path, arrays: dict[tuple[str, int], np.ndarray], n_found: int, has_states: bool) -> int:
    """The common step count M, after checking every file's rank and row count."""
    ndims = {"obs": 2, "next_obs": 2, "acs": 2, "rews": 1, "dones": 1, "states": 2, "next_states": 2}
    what = {1: "[M] (one value per step)", 2: "[M, features]"}
    for (name, i), array in arrays.items():
        if array.ndim != ndims[name]:
            raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: shape {list(array.shape)}, expected "
                                    f"{what[ndims[name]]}")
    n_steps = arrays[("obs", 0)].shape[0]
    if n_steps == 0:
        raise ImportFormatError(f"{src / 'obs_0.npy'}: no steps (0 rows)")
    for (name, i), array in arrays.items():
        if array.shape[0] != n_steps:
            raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: {array.shape[0]} rows, expected {n_steps} like "
                                    "obs_0.npy (every file of every agent holds one row per step)")
    for i in range(n_found):
        for a, b in (("obs", "next_obs"),) + ((("states", "next_states"),) if has_states else ()):
            if arrays[(a, i)].shape[1] != arrays[(b, i)].shape[1]:
                raise ImportFormatError(f"{src / f'{b}_{i}.npy'}: {arrays[(b, i)].shape[1]} features, expected "
                                        f"{arrays[(a, i)].shape[1]} like {a}_{i}.npy")
    return n_steps


def _first_bad(bad: np.ndarray) -> str:
    t, *j = np.argwhere(bad)[0]
    return f"step {t}" + (f", feature {j[0]}" if j else "")


def _finite(src: Path, arrays: dict[tuple[str, int], np.ndarray], name: str, i: int) -> np.ndarray:
    """The array in memory, after checking it holds no NaN or inf (naming file, step and feature)."""
    array = np.asarray(arrays[(name, i)])
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: {int(bad.sum())} NaN or infinite values, first "
                                    f"at {_first_bad(bad)} (expected finite numbers)")
    return array


def _real_width(src: Path, arrays: dict[tuple[str, int], np.ndarray], i: int) -> int:
    """Agent i's observation size without a trailing block of features non-finite on every step."""
    widths = []
    for name in ("obs", "next_obs"):
        array = np.asarray(arrays[(name, i)])
        bad = ~np.isfinite(array) if array.dtype.kind == "f" else np.zeros(array.shape, bool)
        width = real_width(bad)
        if bad[:, :width].any():
            t, j = np.argwhere(bad[:, :width])[0]
            raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: {array[t, j]} at step {t}, feature {j} (expected "
                                    "finite numbers; only a trailing block of features non-finite on every step "
                                    "is read as padding)")
        if width == 0:
            raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: every feature is non-finite on every step")
        widths.append(width)
    if widths[0] != widths[1]:
        raise ImportFormatError(f"{src / f'next_obs_{i}.npy'}: {widths[1]} finite features, expected {widths[0]} "
                                f"like obs_{i}.npy")
    return widths[0]


def _check_next(src: Path, arrays: dict[tuple[str, int], np.ndarray], name: str, i: int, width: int,
                inside: np.ndarray) -> float:
    """Largest |next_<name>[t] - <name>[t+1]| over steps t inside an episode; raises past TOLERANCE."""
    steps = np.flatnonzero(inside)
    if not len(steps):
        return 0.0
    nxt = np.asarray(arrays[(f"next_{name}", i)][steps, :width], np.float64)
    cur = np.asarray(arrays[(name, i)][steps + 1, :width], np.float64)
    dev = np.abs(nxt - cur).max(1)  # [steps]
    worst = float(dev.max())
    if worst > TOLERANCE:
        k = int(np.argmax(dev > TOLERANCE))
        raise ImportFormatError(f"{src / f'next_{name}_{i}.npy'}: row {steps[k]} differs from {name}_{i}.npy row "
                                f"{steps[k] + 1} by up to {dev[k]:.3g} inside an episode (expected equal, "
                                f"tolerance {TOLERANCE:g}; max deviation {worst:.3g})")
    return worst


def _pad(parts: list[np.ndarray], widths: list[int], obs_dim: int) -> np.ndarray:
    """[rows, N, obs_dim] float32 from per-agent [rows, O_i] arrays, real features first, zeros after."""
    out = np.zeros((parts[0].shape[0], len(parts), obs_dim), np.float32)
    for n, (part, width) in enumerate(zip(parts, widths)):
        out[:, n, :width] = part[:, :width]
    return out


def _states(src: Path, arrays: dict[tuple[str, int], np.ndarray], n_found: int, inside: np.ndarray,
            mapping: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """states_0 / next_states_0 as [M, S] float32, after checking every agent's copy equals agent 0's."""
    out = []
    for name in STATE_FILES:
        ref = np.asarray(_finite(src, arrays, name, 0), np.float64)
        for i in range(1, n_found):
            other = np.asarray(_finite(src, arrays, name, i), np.float64)
            if other.shape != ref.shape:
                raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: shape {list(other.shape)}, expected "
                                        f"{list(ref.shape)} like {name}_0.npy (the global state)")
            bad = np.abs(other - ref) > TOLERANCE
            if bad.any():
                raise ImportFormatError(f"{src / f'{name}_{i}.npy'}: differs from {name}_0.npy at {_first_bad(bad)} "
                                        "(expected every agent's copy of the global state to be equal)")
        out.append(ref.astype(np.float32))
    deviation = _check_next(src, arrays, "states", 0, out[0].shape[1], inside)
    mapping.append(f"state: states_0.npy ({out[0].shape[1]} features; states_i.npy of all {n_found} agents are "
                   f"equal); final state from next_states_0.npy at each episode's last step (inside episodes "
                   f"next_states[t] == states[t+1], max deviation {deviation:.3g})")
    return out[0], out[1]
