"""SMAC (oxwhirl/smac on StarCraft II): the same protocol over ``smac.env.StarCraft2Env``, one SC2 process per copy.

SMAC is not a pip extra of logo: it needs the StarCraft II binary and the SMAC maps, and its protobuf pin
clashes with other dependencies. Install it by hand (see ``INSTALL``). Copies are stepped in a Python loop.

Observations, state and legal actions come from ``get_obs``, ``get_state`` and ``get_avail_actions``;
the reward is SMAC's team reward (one float per step, shared by all agents); ``info["won"]`` is SMAC's
``battle_won``. A battle that ends by a wipe-out terminates; reaching the map's episode limit truncates.
Actions: ``0`` no-op (dead agents only), ``1`` stop, ``2``-``5`` move north, south, east, west,
``6 + k`` attack enemy ``k`` (Medivacs: heal ally ``k``).

Seeding: StarCraft II takes its random seed when the process starts, not per episode. The first
``reset(seeds)`` starts copy ``b`` with ``seeds[b]``; later resets continue that process's random stream
unless ``exact_seeds=True``, which restarts every process on every reset (slow: seconds per episode)
so that the same seed and actions replay the same episode, as far as StarCraft II is deterministic.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from logo.envs.base import EnvSpec, MissingExtraError, TimeStep, check_actions, check_seeds
from logo.errors import LogoError

SCENARIOS = ("3m", "2s3z", "5m_vs_6m", "3s_vs_5z", "6h_vs_8z")
INSTALL = ("pip install git+https://github.com/oxwhirl/smac.git, then install StarCraft II (Linux: "
           "https://github.com/Blizzard/s2client-proto#downloads, unzipped to ~/StarCraftII or wherever SC2PATH "
           "points) and copy the SMAC maps into $SC2PATH/Maps/SMAC_Maps "
           "(https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip)")
TEAM_REWARD = ("SMAC's shared team reward (StarCraft2Env.step returns one float for all agents): damage dealt "
               "plus reward_death_value per enemy killed plus reward_win on a win, divided by "
               "max_reward / reward_scale_rate (defaults: a perfect battle returns about 20)")
NOOP = 0  # SMAC's no-op, the only legal action of a dead agent


def _import_smac() -> Any:
    """``smac.env`` or a MissingExtraError that says how to install SMAC and StarCraft II."""
    try:
        return importlib.import_module("smac.env")
    except ImportError as exc:
        raise MissingExtraError(
            f"the 'smac' environments need the Python package 'smac' (oxwhirl/smac), which is not installed "
            f"({exc}); it is not a pip extra of logo. Install it with: {INSTALL}") from exc


def _sc2_options(smac_env: Any) -> set[str]:
    """StarCraft2Env's keyword arguments that logo passes through (map_name and seed are logo's own)."""
    params = inspect.signature(smac_env.StarCraft2Env.__init__).parameters
    return {name for name in params if name not in ("self", "map_name", "seed")}


class SMACEnv:
    """``num_envs`` copies of one SMAC map, each its own StarCraft II process (see the module docstring).

    Args:
        scenario: a SMAC map name, e.g. ``3m``, ``2s3z``, ``5m_vs_6m``, ``6h_vs_8z``.
        num_envs: number of independent copies (SC2 processes, started at the first reset).
        exact_seeds: restart every SC2 process on every reset with its seed (reproducible, slow).
        sc2_options: passed to ``StarCraft2Env`` (e.g. ``difficulty``, ``step_mul``, ``reward_sparse``).
    """

    def __init__(self, scenario: str, num_envs: int = 1, exact_seeds: bool = False, **sc2_options: Any):
        smac_env = _import_smac()
        allowed = _sc2_options(smac_env)
        unknown = sorted(set(sc2_options) - allowed)
        if unknown:
            raise LogoError(f"smac options: unknown {unknown}; expected 'exact_seeds' or StarCraft2Env arguments "
                            f"{sorted(allowed)}")
        if num_envs < 1:
            raise LogoError(f"num_envs: expected at least 1, got {num_envs}")
        self._smac_env, self._options = smac_env, dict(sc2_options)
        try:
            probe = smac_env.StarCraft2Env(map_name=scenario, **self._options)  # reads map params, starts no SC2
        except KeyError as exc:
            raise LogoError(f"smac scenario: expected a SMAC map such as {', '.join(SCENARIOS)} (see "
                            f"smac.env.starcraft2.maps), got {scenario!r}") from exc
        info = probe.get_env_info()
        self.scenario, self.num_envs, self.exact_seeds = scenario, int(num_envs), bool(exact_seeds)
        self.n_enemies = int(probe.n_enemies)
        n = int(info["n_agents"])
        self.spec = EnvSpec(
            family="smac", scenario=scenario, n_agents=n, obs_dim=int(info["obs_shape"]),
            state_dim=int(info["state_shape"]), action_kind="discrete", n_actions=int(info["n_actions"]),
            max_steps=int(info["episode_limit"]), has_win=True, agent_names=tuple(f"agent_{i}" for i in range(n)),
            notes={"team_reward": TEAM_REWARD,
                   "actions": "0 no-op (dead only), 1 stop, 2 north, 3 south, 4 east, 5 west, 6+k attack enemy k",
                   "n_enemies": self.n_enemies, "won": "SMAC's info['battle_won']",
                   "truncation": f"truncated at the map's episode limit ({int(info['episode_limit'])} steps)",
                   "seeding": "exact per reset" if exact_seeds else "SC2 seeded at the first reset only",
                   "sc2_options": dict(self._options)})
        self._envs: list[Any] = []
        self._launch_seeds: list[int] = []
        self._last: TimeStep | None = None
        self._steps = np.zeros(self.num_envs, np.int64)

    def _start(self, seed: int) -> Any:
        return self._smac_env.StarCraft2Env(map_name=self.scenario, seed=seed, **self._options)

    def reset(self, seeds: Sequence[int]) -> TimeStep:
        seeds = check_seeds(seeds, self.num_envs)
        launching = not self._envs or self.exact_seeds
        if launching:
            self.close()
            self._envs, self._launch_seeds = [self._start(s) for s in seeds], list(seeds)
        rows = []
        for env in self._envs:
            try:
                env.reset()  # starts StarCraft II on a copy's first reset
            except Exception as exc:  # pysc2 raises assorted errors when StarCraft II or the maps are missing
                if not launching:
                    raise
                self.close()
                raise LogoError(f"smac: StarCraft II could not be started for map {self.scenario!r} ({exc!r}); "
                                f"SC2PATH={os.environ.get('SC2PATH', '<unset: ~/StarCraftII>')}. "
                                f"Install StarCraft II and the SMAC maps: {INSTALL}") from exc
            rows.append(self._observe(env))
        self._steps[:] = 0
        zeros = np.zeros(self.num_envs, bool)
        self._last = TimeStep(obs=np.stack([r[0] for r in rows]), state=np.stack([r[1] for r in rows]),
                              reward=np.zeros(self.num_envs, np.float32), terminated=zeros, truncated=zeros.copy(),
                              avail_actions=np.stack([r[2] for r in rows]), info={"won": zeros.copy()})
        return self._last

    def _observe(self, env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = np.stack([np.asarray(o, np.float32) for o in env.get_obs()])  # [N, obs_dim]
        state = np.asarray(env.get_state(), np.float32)  # [state_dim]
        avail = np.asarray(env.get_avail_actions(), bool)  # [N, n_actions]
        return obs, state, avail

    def step(self, actions: np.ndarray) -> TimeStep:
        if self._last is None:
            raise RuntimeError("SMACEnv.step called before reset")
        last = self._last
        actions = check_actions(actions, self.spec, self.num_envs)
        finished = last.done
        legal = np.take_along_axis(last.avail_actions, actions[..., None], -1)[..., 0] | finished[:, None]
        if not legal.all():
            b, i = (int(x) for x in np.argwhere(~legal)[0])
            raise ValueError(f"actions: agent {i} of copy {b} took action {int(actions[b, i])}, which avail_actions "
                             f"marks illegal (legal: {np.flatnonzero(last.avail_actions[b, i]).tolist()}); "
                             f"{int((~legal).sum())} illegal actions in all")
        obs, state, avail = last.obs.copy(), last.state.copy(), last.avail_actions.copy()
        reward = np.zeros(self.num_envs, np.float32)
        terminated, truncated, won = last.terminated.copy(), last.truncated.copy(), last.info["won"].copy()
        for b, env in enumerate(self._envs):
            if finished[b]:  # frozen: final observation again, reward 0, same flags
                continue
            r, ended, info = env.step(actions[b].tolist())
            self._steps[b] += 1
            obs[b], state[b], avail[b] = self._observe(env)
            reward[b] = r
            won[b] = bool(info.get("battle_won", False))
            decided = won[b] or _wiped_out(env.agents) or _wiped_out(env.enemies)
            # SMAC reports the time limit as an ordinary end (info["episode_limit"] only with continuing_episode);
            # a battle decided on the limit step counts as decided, as in SMAC
            limit = bool(info.get("episode_limit", False)) or self._steps[b] >= self.spec.max_steps
            truncated[b] = bool(ended) and not decided and limit
            terminated[b] = bool(ended) and not truncated[b]  # incl. SMAC's restart after a lost SC2 connection
        self._last = TimeStep(obs=obs, state=state, reward=reward, terminated=terminated, truncated=truncated,
                              avail_actions=avail, info={"won": won})
        return self._last

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []


def _wiped_out(units: dict) -> bool:
    """Whether every unit of a SMAC side (``env.agents`` or ``env.enemies``) is dead."""
    return bool(units) and all(u.health == 0 for u in units.values())


def make(scenario: str, num_envs: int = 1, **options: Any) -> SMACEnv:
    """``num_envs`` copies of a SMAC map; options: ``exact_seeds`` and any ``StarCraft2Env`` argument."""
    return SMACEnv(scenario, num_envs=num_envs, **options)
