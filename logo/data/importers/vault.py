"""og-marl / flashbax vaults (``<source>/<env>/<scenario>.vlt/<uid>/``) into logo datasets.

A vault is a set of zarr v2 arrays inside one tensorstore OCDBT key-value store rooted at the
``<uid>`` folder, so the plain ``zarr`` library cannot open it; it is read with ``tensorstore``
(the ``vault`` extra), without JAX. Layout (flashbax ``Vault``, og-marl's writer):

* ``metadata.json``: ``version`` and the experience structure, as ``structure_shape`` +
  ``structure_dtype`` (1.x) or one ``structure`` of ``[shape, dtype]`` pairs (0.x);
* one array per leaf of that structure, named by its path with a trailing dot (``observations.``,
  ``actions.``, ``rewards.``, ``terminals.``, ``truncations.``, ``infos.state.``,
  ``infos.legals.``), shaped ``[1, T_declared, ...]`` with a time axis declared far longer than
  the data;
* ``vault_index``: the true number of stored steps T.

Row t holds the observation, state and legal actions before step t and the per-agent reward and
done flags that step returned; episodes follow one another, and the observation reached after an
episode's last step is not stored. See ``docs/importers.md`` for the full mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from logo.data.importers.base import (
    Episode,
    ImportFormatError,
    ImportSource,
    episode_slices,
    real_width,
    require_finite,
)
from logo.data.schema import DatasetSpec

ENV_FAMILIES = {"smac_v1": "smac", "smac_v2": "smac", "smac": "smac", "mamujoco": "mamujoco", "mpe": "mpe",
                "pettingzoo": "mpe", "smax": "smax"}
REQUIRED = ("observations", "actions", "rewards", "terminals", "truncations")


def find_uid_folder(src: Path, uid: str | None) -> Path:
    """The vault's ``<uid>`` folder from ``src`` (the uid folder itself, or the ``.vlt`` folder plus ``uid``)."""
    if (src / "metadata.json").is_file():
        return src
    uids = sorted(p.name for p in src.iterdir() if (p / "metadata.json").is_file()) if src.is_dir() else []
    if uid is not None:
        if uid not in uids:
            raise ImportFormatError(f"{src}: no vault uid {uid!r} (found {', '.join(uids) or 'none'})")
        return src / uid
    if len(uids) == 1:
        return src / uids[0]
    if uids:
        raise ImportFormatError(f"{src}: holds several vaults ({', '.join(uids)}); choose one with --uid")
    raise ImportFormatError(f"{src}: not a vault (no metadata.json here or in a uid folder below)")


def leaf_paths(metadata: dict[str, Any], source: str) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Leaf path -> declared shape, from 1.x (``structure_shape``) or 0.x (``structure``) metadata."""
    def walk(node: Any, prefix: tuple[str, ...], out: dict, pick) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, prefix + (str(key),), out, pick)
        else:
            out[prefix] = pick(node)

    out: dict[tuple[str, ...], tuple[str, ...]] = {}
    if "structure_shape" in metadata:
        walk(metadata["structure_shape"], (), out, lambda leaf: leaf)
    elif "structure" in metadata:
        walk(metadata["structure"], (), out, lambda leaf: leaf[0])
    else:
        raise ImportFormatError(f"{source}: metadata.json has neither 'structure_shape' (vault 1.x) nor "
                                "'structure' (vault 0.x)")
    return out


def _open(uid_dir: Path, name: str):
    import tensorstore as ts

    spec = {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir.resolve()}", "path": name}}
    try:
        return ts.open(spec, open=True).result()
    except Exception as exc:  # tensorstore raises ValueError subclasses with long messages
        raise ImportFormatError(f"{uid_dir}: cannot open array {name!r} ({str(exc).splitlines()[0]})") from exc


def read_arrays(uid_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every leaf of the vault, cut to its true length and without the batch axis, plus the metadata."""
    try:
        import tensorstore  # noqa: F401
    except ImportError as exc:
        raise ImportFormatError("reading og-marl vaults needs tensorstore: pip install 'logo[vault]'") from exc
    meta_path = uid_dir / "metadata.json"
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{meta_path}: not valid JSON ({exc})") from exc
    leaves = leaf_paths(metadata, str(meta_path))
    length = int(np.asarray(_open(uid_dir, "vault_index").read().result()).reshape(-1)[0])
    if length < 1:
        raise ImportFormatError(f"{uid_dir}: vault_index is {length}: the vault holds no steps")
    arrays = {}
    for path in leaves:
        name = ".".join(path) + "."
        store = _open(uid_dir, name)
        if store.shape[0] != 1 or store.shape[1] < length:
            raise ImportFormatError(f"{uid_dir}: array {name!r} has shape {list(store.shape)}, expected "
                                    f"[1, >= {length} (vault_index), ...]")
        arrays[".".join(path)] = np.asarray(store[0, :length].read().result())
    return arrays, metadata


def read(src: Path, uid: str | None = None, env: str | None = None, scenario: str | None = None,
         quality: str | None = None, team_reward: Literal["agent0", "mean", "sum"] = "agent0",
         episode_limit: int | None = None) -> ImportSource:
    """Open an og-marl vault (see the module docstring) as an :class:`ImportSource`.

    Args:
        src: the ``<uid>`` folder, or the ``<scenario>.vlt`` folder (with ``uid`` when it holds several).
        uid: which vault of a ``.vlt`` folder (og-marl names them Good, Medium, Poor, Replay, ...).
        env: logo env family; default from the path (``smac_v1`` -> smac, ``mamujoco``, ``mpe``).
        scenario: scenario name; default the ``.vlt`` folder's stem.
        quality: quality label; default the uid, lower-cased.
        team_reward: how per-agent rewards become the team reward: ``agent0`` (default: as og-marl computes
            episode returns, ``calculate_returns``), ``mean`` (og-marl's training code; the same number for
            team-reward data, where every agent gets the team reward) or ``sum``.
        episode_limit: the scenario's time limit; an episode that ends by termination flags at exactly
            this length is counted as truncated (og-marl's SMAC vaults flag time-limit ends as terminals).
    """
    uid_dir = find_uid_folder(src, uid)
    where = str(uid_dir)
    arrays, metadata = read_arrays(uid_dir)
    missing = [k for k in REQUIRED if k not in arrays]
    state_key = next((k for k in ("infos.state", "infos.states", "state") if k in arrays), None)
    if missing or state_key is None:
        names = missing + ([] if state_key else ["infos.state"])
        raise ImportFormatError(f"{where}: missing array(s) {', '.join(repr(n + '.') for n in names)} "
                                f"(found {', '.join(repr(k + '.') for k in sorted(arrays))})")
    mapping = [f"vault {where}: version {metadata.get('version')}, {len(arrays['rewards'])} steps (vault_index)"]
    obs = arrays["observations"]
    if obs.ndim != 3:
        raise ImportFormatError(f"{where}: observations. has shape {[1, *obs.shape]}, expected [1, T, N, obs_dim]")
    t, n, obs_dim = obs.shape
    for key in ("rewards", "terminals", "truncations"):
        if arrays[key].shape not in ((t, n), (t, n, 1), (t,)):
            raise ImportFormatError(f"{where}: {key}. has shape [1, {', '.join(map(str, arrays[key].shape))}], "
                                    f"expected [1, {t}, {n}] (per agent)")
    rewards = arrays["rewards"].reshape(t, -1).astype(np.float32)
    terminals = arrays["terminals"].reshape(t, -1) > 0
    truncations = arrays["truncations"].reshape(t, -1) > 0

    obs, obs_mask = _mask_padding(obs.astype(np.float32), where, mapping)
    state = arrays[state_key].astype(np.float32)
    if state.ndim == 3:  # per-agent state [T, N, S]
        same = bool(np.allclose(state, state[:, :1], equal_nan=True))
        mapping.append(f"{state_key}. is per agent {list(state.shape[1:])}: agent 0's row is the global state "
                       f"({'all agents equal' if same else 'agents differ'})")
        state = state[:, 0]
    else:
        mapping.append(f"{state_key}. [T, {state.shape[-1]}] is the global state")
    for key, value in (("observations", obs), (state_key, state), ("rewards", rewards)):
        require_finite(key + ".", value, where)

    actions = arrays["actions"]
    legals = arrays.get("infos.legals")
    discrete = np.issubdtype(actions.dtype, np.integer) or legals is not None
    if discrete:
        if actions.ndim == 3 and actions.shape[-1] == 1:
            actions = actions[..., 0]
        if not np.allclose(actions, np.round(actions)):
            raise ImportFormatError(f"{where}: actions. holds non-integer values but the vault is discrete")
        actions = actions.astype(np.int64)
        n_actions = int(legals.shape[-1]) if legals is not None else int(actions.max()) + 1
        avail = legals.astype(bool) if legals is not None else np.ones((t, n, n_actions), bool)
        mapping.append(f"actions. [T, N] -> discrete actions ({n_actions} per agent); "
                       + ("infos.legals. -> avail_actions" if legals is not None
                          else "no infos.legals.: every action marked legal"))
        bad = (actions < 0) | (actions >= n_actions)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise ImportFormatError(f"{where}: actions. step {step} holds {actions[step].tolist()}, outside "
                                    f"[0, {n_actions})")
    else:
        actions = actions.astype(np.float32).reshape(t, n, -1)
        require_finite("actions.", actions, where)
        n_actions, avail = None, None
        low, high = float(actions.min()), float(actions.max())
        mapping.append(f"actions. [T, N, {actions.shape[-1]}] -> continuous actions, bounds [-1, 1] "
                       f"(data range [{low:.3g}, {high:.3g}])")
        outside = int(((actions < -1) | (actions > 1)).sum())
        if outside:
            actions = np.clip(actions, -1.0, 1.0)
            mapping.append(f"{outside} action values outside [-1, 1] clipped (og-marl clips OMIGA-sourced actions)")

    team = {"mean": rewards.mean(1), "sum": rewards.sum(1), "agent0": rewards[:, 0]}[team_reward]
    identical = bool(np.allclose(rewards, rewards[:, :1]))
    mapping.append(f"team reward = {team_reward} of rewards. over agents "
                   f"({'all agents receive the same reward' if identical else 'agents receive different rewards'});"
                   " per-agent rewards kept as agent_rewards")

    terminated = terminals.all(1)
    truncated = truncations.all(1) & ~terminated
    mapping.append("episode ends: all agents' terminals. (termination) or all agents' truncations. (time limit)")
    slices = episode_slices(terminated | truncated)
    tail = t - (slices[-1].stop if slices else 0)
    if tail:
        mapping.append(f"the last {tail} steps after the final episode end form no complete episode: dropped")
    relabelled = 0
    plans = []  # (slice, ends_by_termination)
    for s in slices:
        ends_terminal = bool(terminated[s.stop - 1])
        if ends_terminal and episode_limit is not None and s.stop - s.start == episode_limit:
            ends_terminal = False
            relabelled += 1
        plans.append((s, ends_terminal))
    if episode_limit is not None:
        mapping.append(f"{relabelled} episodes of exactly episode_limit={episode_limit} steps ending by terminal "
                       "flags counted as truncated")
    mapping.append("the observation after an episode's last step is not stored: a terminated episode keeps all its "
                   "steps and repeats its last observation as the final one (never bootstrapped); a truncated "
                   "episode gives up its last step, whose observation becomes the final one")
    short = [s for s, term in plans if not term and s.stop - s.start < 2]
    if short:
        mapping.append(f"{len(short)} truncated one-step episodes dropped (no step left once the last is given up)")
    plans = [(s, term) for s, term in plans if term or s.stop - s.start >= 2]
    if not plans:
        raise ImportFormatError(f"{where}: no complete episode (no step where all agents are terminal or truncated)")

    def episodes() -> Iterator[Episode]:
        for s, ends_terminal in plans:
            steps = slice(s.start, s.stop if ends_terminal else s.stop - 1)
            last = s.stop - 1
            yield Episode(
                observations=obs[steps], state=state[steps], actions=actions[steps], rewards=team[steps],
                terminated=ends_terminal, final_observation=obs[last], final_state=state[last],
                avail_actions=None if avail is None else avail[steps],
                final_avail_actions=None if avail is None else avail[last], agent_rewards=rewards[steps])

    parts = uid_dir.resolve().parts
    vlt = uid_dir.parent.name
    family = env or ENV_FAMILIES.get(parts[-3] if len(parts) >= 3 else "", parts[-3] if len(parts) >= 3 else "")
    spec = DatasetSpec(
        env_family=family or "unknown", scenario=scenario or vlt.removesuffix(".vlt"), n_agents=n,
        obs_dim=obs_dim, state_dim=int(state.shape[-1]), action_kind="discrete" if discrete else "continuous",
        n_actions=n_actions, action_dim=None if discrete else int(actions.shape[-1]),
        action_low=None if discrete else [-1.0] * int(actions.shape[-1]),
        action_high=None if discrete else [1.0] * int(actions.shape[-1]),
        quality=quality or uid_dir.name.lower(), behaviour="og-marl dataset",
        source=f"og-marl vault {uid_dir}")
    return ImportSource(spec=spec, episodes=episodes, n_episodes=len(plans), mapping=mapping, obs_mask=obs_mask)


def _mask_padding(obs: np.ndarray, where: str, mapping: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-agent trailing features that are non-finite on every step are padding (OMAR tag/world data padded
    with -inf): zero them and mask them out. Any other non-finite value is an error."""
    bad = ~np.isfinite(obs)
    if not bad.any():
        return obs, None
    # only a trailing block per agent of features non-finite on every step counts as padding
    widths = np.array([real_width(bad[:, i]) for i in range(obs.shape[1])])  # [N]
    trailing = np.arange(obs.shape[2])[None] >= widths[:, None]  # [N, obs_dim]
    if (bad & ~trailing[None]).any():
        step, agent, feature = (int(i) for i in np.argwhere(bad & ~trailing[None])[0])
        raise ImportFormatError(f"{where}: observations. holds a NaN or infinite value at step {step}, agent "
                                f"{agent}, feature {feature}")
    obs = np.where(trailing[None], 0.0, obs).astype(np.float32)
    counts = ", ".join(f"agent {i}: {int(c)}" for i, c in enumerate(trailing.sum(1)) if c)
    mapping.append(f"observations padded with non-finite values (trailing features: {counts}): zeroed and masked "
                   "out in obs_mask")
    return obs, ~trailing
