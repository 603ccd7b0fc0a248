"""SMAX (jaxmarl's JAX re-implementation of SMAC): the allies are controlled, jaxmarl's heuristic AI the enemy.

All ``num_envs`` copies step in ONE jitted, vmapped function (one host<->device transfer per batched
step), built from jaxmarl's non-resetting ``step_env``; finished copies are frozen inside that function.
Copy ``b`` is reset with ``jax.random.PRNGKey(seeds[b])``; every later step key is split from it, so the
same seed and actions replay the same episode.

Observations are jaxmarl's per-ally ``unit_list`` vectors (all the same size), the state its
``world_state``. Actions (per ally): ``0`` north (+y), ``1`` east (+x), ``2`` south, ``3`` west,
``4`` stop, ``5 + k`` attack enemy ``k``; dead allies may only stop. jaxmarl gives every ally the same
reward, so the team reward is that shared value: the enemies' summed health loss this step as a fraction
of their full health, divided by the number of enemies, plus 1 when the allies win. A full win
therefore returns 2. Episodes terminate when one side is wiped out and are truncated after
``max_steps`` steps. ``info["won"]``: all enemies dead while an ally lives (both sides dying in the same
step is a draw: terminated, not won, no bonus).

Example:
    >>> env = make("3m", num_envs=8)  # doctest: +SKIP
    >>> ts = env.reset(range(8))  # doctest: +SKIP
    >>> ts = env.step(scripted_policy(env).act(ts))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from logo.envs.base import EnvSpec, TimeStep, check_actions, check_options, check_seeds, require
from logo.errors import LogoError

SCENARIOS = ("3m", "2s3z", "5m_vs_6m", "3s_vs_5z", "6h_vs_8z")
OPTIONS = ("max_steps",)
N_MOVES = 5  # north, east, south, west, stop: jaxmarl's discrete movement actions
STOP = 4
DEFAULT_MAX_STEPS = 100  # jaxmarl SMAX's default episode limit

TEAM_REWARD = ("shared jaxmarl SMAX reward (identical for every ally): summed enemy health lost this step as a "
               "fraction of each enemy's full health, divided by the number of enemies, plus 1 on a win; "
               "a full win returns 2")


def _jaxmarl_smax() -> Any:
    """jaxmarl's SMAX module. jaxmarl prints about optional submodules on import, and one of its modules resets
    ``sys.stdout`` to ``sys.__stdout__`` while importing, so both are silenced for the import only."""
    sink, saved = io.StringIO(), (sys.stdout, sys.__stdout__)
    try:
        sys.stdout = sys.__stdout__ = sink
        require("jaxmarl", extra="smax", family="smax")
        return require("jaxmarl.environments.smax", extra="smax", family="smax")
    finally:
        sys.stdout, sys.__stdout__ = saved


class _Carry(NamedTuple):
    """Everything one copy keeps on the device between steps."""

    env_state: Any  # jaxmarl HeuristicEnemySMAX state
    key: Any  # PRNG key the next step key is split from
    obs: Any  # [N, obs_dim]
    state: Any  # [state_dim]
    avail: Any  # [N, n_actions] bool
    terminated: Any  # [] bool
    truncated: Any  # [] bool
    won: Any  # [] bool


class _Compiled(NamedTuple):
    env: Any  # the jaxmarl HeuristicEnemySMAX
    reset: Any  # keys [B, 2] -> carry
    step: Any  # (carry, actions [B, N] int32, max_steps []) -> (carry, reward [B])


@cache
def _compiled(scenario: str) -> _Compiled:
    """The jitted, vmapped reset and step of one scenario, cached so that every adapter of a scenario shares
    them; jit compiles once per batch size. The episode limit is an argument, so it costs no recompile."""
    import jax
    import jax.numpy as jnp

    smax = _jaxmarl_smax()
    env = smax.HeuristicEnemySMAX(scenario=smax.map_name_to_scenario(scenario))
    allies = list(env.agents)
    n = env.num_allies

    def observe(env_state: Any, obs: dict) -> tuple:
        avail = env.get_avail_actions(env_state)
        return (jnp.stack([obs[a] for a in allies]).astype(jnp.float32), obs["world_state"].astype(jnp.float32),
                jnp.stack([avail[a] for a in allies]).astype(bool))

    def strong(carry: _Carry) -> _Carry:
        # one dtype per leaf, never weakly typed: otherwise reset's and step's carries differ and jit recompiles
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), carry)

    def reset_one(seed_key: Any) -> _Carry:
        key, reset_key = jax.random.split(seed_key)
        obs, env_state = env.reset(reset_key)
        o, s, avail = observe(env_state, obs)
        false = jnp.zeros((), bool)
        return strong(_Carry(env_state, key, o, s, avail, false, false, false))

    def step_one(carry: _Carry, actions: Any, max_steps: Any) -> tuple[_Carry, Any]:
        key, step_key = jax.random.split(carry.key)
        obs, env_state, rewards, _, _ = env.step_env(step_key, carry.env_state,
                                                     {a: actions[i] for i, a in enumerate(allies)})
        alive = env_state.state.unit_alive
        lost, beaten = ~alive[:n].any(), ~alive[n:].any()
        terminated = lost | beaten
        # jaxmarl's own done flag (unused) would cut at its max_steps + 1; logo truncates after exactly max_steps
        truncated = (env_state.state.step >= max_steps) & ~terminated
        o, s, avail = observe(env_state, obs)
        new = _Carry(env_state, key, o, s, avail, terminated, truncated, beaten & ~lost)
        finished = carry.terminated | carry.truncated  # frozen: keep everything, reward 0
        carry = jax.tree.map(lambda old, nxt: jnp.where(finished, old, nxt), carry, new)
        return strong(carry), jnp.where(finished, 0.0, rewards[allies[0]]).astype(jnp.float32)

    return _Compiled(env, jax.jit(jax.vmap(reset_one)), jax.jit(jax.vmap(step_one, in_axes=(0, 0, None))))


class SMAXEnv:
    """``num_envs`` copies of one SMAX scenario against jaxmarl's heuristic enemy (see the module docstring).

    Args:
        scenario: a jaxmarl SMAX map name, e.g. ``3m``, ``2s3z``, ``5m_vs_6m``, ``6h_vs_8z``.
        num_envs: number of independent copies, stepped together by one vmapped function.
        max_steps: episode limit; reaching it truncates the episode.
    """

    def __init__(self, scenario: str, num_envs: int = 1, max_steps: int = DEFAULT_MAX_STEPS):
        smax = _jaxmarl_smax()
        import jax

        known = sorted(smax.smax_env.MAP_NAME_TO_SCENARIO)
        if scenario not in known:
            raise LogoError(f"smax scenario: expected a jaxmarl SMAX map such as {', '.join(SCENARIOS)} "
                            f"(all: {', '.join(known)}), got {scenario!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
            raise LogoError(f"max_steps: expected a positive integer episode limit, got {max_steps!r}")
        if num_envs < 1:
            raise LogoError(f"num_envs: expected at least 1, got {num_envs}")
        self._jax = jax
        self._fns = _compiled(scenario)
        self._max_steps = np.int32(max_steps)
        env = self._fns.env
        self.num_envs = int(num_envs)
        self.spec = EnvSpec(
            family="smax", scenario=scenario, n_agents=env.num_allies, obs_dim=int(env.obs_size),
            state_dim=int(env.state_size), action_kind="discrete", n_actions=int(env.num_ally_actions),
            max_steps=int(max_steps), has_win=True, agent_names=tuple(env.agents),
            notes={"team_reward": TEAM_REWARD,
                   "actions": "0 north (+y), 1 east (+x), 2 south, 3 west, 4 stop, 5+k attack enemy k",
                   "enemy": "jaxmarl HeuristicEnemySMAX (attack_mode='closest')",
                   "n_enemies": int(env.num_enemies),
                   "won": "all enemies dead while at least one ally lives (a mutual wipe-out is a draw)",
                   "truncation": f"truncated after max_steps={int(max_steps)} steps"})
        self._carry: _Carry | None = None
        self._avail: np.ndarray | None = None  # [B, N, n_actions] of the last TimeStep, to check actions
        self._finished = np.zeros(self.num_envs, bool)

    @property
    def jax_env(self) -> Any:
        """The underlying jaxmarl ``HeuristicEnemySMAX`` (for unit constants such as attack ranges)."""
        return self._fns.env

    def reset(self, seeds: Sequence[int]) -> TimeStep:
        seeds = check_seeds(seeds, self.num_envs)
        keys = np.stack([np.asarray(self._jax.random.PRNGKey(s)) for s in seeds])
        self._carry = self._fns.reset(keys)
        return self._timestep(np.zeros(self.num_envs, np.float32))

    def step(self, actions: np.ndarray) -> TimeStep:
        if self._carry is None:
            raise RuntimeError("SMAXEnv.step called before reset")
        actions = check_actions(actions, self.spec, self.num_envs)
        legal = np.take_along_axis(self._avail, actions[..., None], -1)[..., 0] | self._finished[:, None]
        if not legal.all():
            b, i = (int(x) for x in np.argwhere(~legal)[0])
            raise ValueError(f"actions: agent {i} of copy {b} took action {int(actions[b, i])}, which avail_actions "
                             f"marks illegal (legal: {np.flatnonzero(self._avail[b, i]).tolist()}); "
                             f"{int((~legal).sum())} illegal actions in all")
        self._carry, reward = self._fns.step(self._carry, actions.astype(np.int32), self._max_steps)
        return self._timestep(reward)

    def _timestep(self, reward: Any) -> TimeStep:
        c = self._carry
        obs, state, avail, reward, terminated, truncated, won = self._jax.device_get(
            (c.obs, c.state, c.avail, reward, c.terminated, c.truncated, c.won))
        # device_get may hand out read-only views of device memory: give the caller its own writable arrays
        self._avail = np.array(avail, bool)
        terminated, truncated = np.array(terminated, bool), np.array(truncated, bool)
        self._finished = terminated | truncated
        return TimeStep(obs=np.array(obs, np.float32), state=np.array(state, np.float32),
                        reward=np.array(reward, np.float32), terminated=terminated, truncated=truncated,
                        avail_actions=self._avail.copy(), info={"won": np.array(won, bool)})

    def close(self) -> None:
        self._carry = None


def make(scenario: str, num_envs: int = 1, **options: Any) -> SMAXEnv:
    """``num_envs`` copies of a SMAX scenario; options: ``max_steps`` (episode limit, default 100)."""
    check_options("smax", options, list(OPTIONS))
    return SMAXEnv(scenario, num_envs=num_envs, **options)


@cache
def _scripted_fn(scenario: str) -> Any:
    """Jitted, vmapped scripted expert: (world_state [B, S], avail [B, N, A]) -> actions [B, N] int32."""
    import jax
    import jax.numpy as jnp

    env = _compiled(scenario).env  # for the unit constants
    n, m = env.num_allies, env.num_enemies
    units = n + m
    width = len(env.own_features)  # per unit in world_state: health fraction, x, y, cooldown, type one-hot
    step_time = env.time_per_step * env.world_steps_per_env_step  # seconds of game time per env step
    moves = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])  # actions 0-3: N, E, S, W
    arena = jnp.array([env.map_width, env.map_height], jnp.float32)
    wall_margin, hold_margin, threat_margin, injured = 1.0, 3.0, 1.0, 0.5

    def act_one(world: Any, avail: Any) -> Any:
        feats = world[: units * width].reshape(units, width)
        types = world[-units:].astype(jnp.int32)
        alive = feats[:, 0] > 0  # dead units have all-zero features
        health = feats[:, 0] * env.unit_type_health[types]
        pos, cooldown = feats[:, 1:3], feats[:, 3]
        ally_alive, enemy_alive, enemy_health = alive[:n], alive[n:], health[n:]
        my_range = env.unit_type_attack_ranges[types[:n]]  # [n]
        enemy_range = env.unit_type_attack_ranges[types[n:]]  # [m]
        dist = jnp.linalg.norm(pos[:n, None] - pos[None, n:], axis=-1)  # [n, m]
        live_dist = jnp.where(enemy_alive[None], dist, jnp.inf)
        nearest = jnp.argmin(live_dist, axis=-1)  # [n] nearest living enemy
        d_near = jnp.min(live_dist, axis=-1)
        in_range = avail[:, N_MOVES:]  # the env's attack legality: both alive and within range
        fighting = (in_range.any(-1) & ally_alive).any()
        centroid = (pos[:n] * ally_alive[:, None]).sum(0) / jnp.maximum(ally_alive.sum(), 1)
        to_centroid = jnp.linalg.norm(pos[n:] - centroid, axis=-1)  # [m]

        # 1. focus fire without overkill: allies in turn take the in-range enemy with the least health not yet
        #    covered by this step's shots (an ally whose weapon cools down past this step fires no shot);
        #    ties go to the enemy nearest the allies' centroid, the same for every ally
        def assign(remaining: Any, i: Any) -> tuple[Any, Any]:
            open_ = in_range[i] & (remaining > 0)
            pick = jnp.where(open_.any(), jnp.argmin(jnp.where(open_, remaining + 0.01 * to_centroid, jnp.inf)),
                             jnp.argmin(jnp.where(in_range[i], enemy_health + 0.01 * to_centroid, jnp.inf)))
            fires = ally_alive[i] & in_range[i].any() & (cooldown[i] < step_time)
            shot = jnp.where(fires, env.unit_type_attacks[types[i]], 0.0)
            return remaining.at[pick].add(-shot), pick

        _, target = jax.lax.scan(assign, enemy_health, jnp.arange(n))

        # 2. nothing in range: all walk towards one team target (weak and near); before the first exchange
        #    the front waits for the stragglers
        team_target = jnp.argmin(jnp.where(enemy_alive, enemy_health + 0.5 * to_centroid, jnp.inf))
        move = jnp.argmax((pos[n + team_target] - pos[:n]) @ moves.T, axis=-1)
        front = jnp.min(jnp.where(ally_alive, d_near, jnp.inf))
        straggling = jnp.max(jnp.where(ally_alive, d_near, -jnp.inf)) > front + 1.0
        hold = ~fighting & straggling & (front < my_range + hold_margin) & (d_near < front + 0.5)
        action = jnp.where(in_range.any(-1), N_MOVES + target, jnp.where(hold, STOP, move))

        # 3. while the weapon cools down for this whole step, step back if injured, or kite a shorter-ranged
        #    nearest enemy that is about to reach us; never towards a wall (walls kill in SMAX)
        reach = enemy_range[nearest]
        kite = (my_range > reach) & (d_near < reach + threat_margin)
        flee = in_range.any(-1) & (cooldown[:n] > 0.9 * step_time) & ((feats[:n, 0] < injured) | kite)
        step_len = env.unit_type_velocities[types[:n]] * step_time
        landing = pos[:n, None] + moves[None] * step_len[:, None, None]  # [n, 4, 2]
        safe = jnp.all((landing > wall_margin) & (landing < arena - wall_margin), axis=-1)
        away = jnp.argmax(jnp.where(safe, (pos[:n] - pos[n + nearest]) @ moves.T, -jnp.inf), axis=-1)
        action = jnp.where(flee & safe.any(-1), away, action)

        legal = jnp.take_along_axis(avail, action[:, None], axis=-1)[:, 0]
        return jnp.where(legal, action, STOP)  # dead allies (and a finished battle): stop

    return jax.jit(jax.vmap(act_one))


class ScriptedSMAXPolicy:
    """Scripted SMAX expert, computed in JAX (jitted, vmapped over copies) from the TimeStep's global state and
    legal-action mask:

    1. focus fire: each ally attacks the in-range enemy with the least health not already covered by its
       teammates' shots this step (no overkill);
    2. with nothing in range, all allies walk towards one team target (weak and near), the front waiting for
       stragglers before the first exchange;
    3. while its weapon cools down, an ally steps back if injured (below half health) or if it outranges the
       nearest enemy and that enemy is about to reach it (kiting), never towards a wall.

    Dead allies stop. Deterministic, so ``seed`` changes nothing.
    """

    def __init__(self, env: SMAXEnv, seed: int = 0):
        if getattr(env, "spec", None) is None or env.spec.family != "smax":
            raise LogoError("the SMAX scripted expert needs a smax environment")
        self.spec = env.spec
        self._fn = _scripted_fn(env.spec.scenario)
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self._seed = int(seed)

    def act(self, ts: TimeStep) -> np.ndarray:
        if ts.avail_actions is None:
            raise ValueError("the SMAX scripted expert needs ts.avail_actions")
        return np.asarray(self._fn(ts.state, ts.avail_actions), np.int64)


def scripted_policy(env: SMAXEnv, seed: int = 0) -> ScriptedSMAXPolicy:
    """The focus-fire scripted expert for a SMAX environment."""
    return ScriptedSMAXPolicy(env, seed=seed)
