"""Model-predictive control: act in the real environment by planning in a trained world model.

At every environment step, for each env copy, :class:`MPCPlanner`

1. proposes K candidate joint-action sequences of length H (``horizon``): closed-loop draws of the
   trained policy with exploration noise (epsilon-greedy or Boltzmann for discrete actions, Gaussian
   in the unit box for continuous ones), or uniform ones; candidate 0 is the noise-free policy;
2. rolls all B x K of them out in the world model together, one batched ``step`` per model step;
3. scores each (:func:`score_rollouts`) by its predicted discounted reward, plus ``gamma^H`` times the
   policy critic's ``Q_tot`` at the end state with the policy's action (``terminal_value``; ``value_at: last``
   instead puts the critic's Q of the plan's last state and action in place of the last reward), minus
   ``uncertainty_penalty`` times its summed uncertainty u; a predicted termination ends the branch
   (no later reward, u or value);
4. with ``iterations > 1`` refits a per-step action distribution to the elites (CEM) or to the
   exp(score / temperature)-weighted candidates (MPPI) and draws K new candidates from it (candidate
   0 replays the best sequence so far);
5. executes the first joint action of the best sequence (``select: best``) or the MPPI-weighted one.

Legal actions: the first step draws only actions the *real* environment allows (its ``avail_actions``);
later steps use the world model's legal-action head (discrete) or the action bounds (continuous).

The planner is centralised by nature: it reads the global state (the world model steps from it),
unlike the decentralised policies it plans around, which act on each agent's own observation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from logo.checkpoint import read_checkpoint
from logo.dims import ACTING_DIMS, LINKED_DIMS, linked_dims
from logo.envs.base import EnvSpec, TimeStep
from logo.errors import LogoError, check_fits
from logo.world_model import WorldModel, load_world_model
from logo.world_model.model_rollout import StepModel


@dataclass
class MPCOptions:
    """Options of the MPC planner (``planner:`` of ``logo evaluate``, ``EnvEvaluation`` and ``logo pipeline``).

    Args:
        world_model: world-model checkpoint to plan in (written by ``logo fit``; ``logo pipeline``: default the
            stage-one checkpoint).
        candidates: K, candidate joint-action sequences per env copy and iteration.
        horizon: H_p, model steps each candidate is rolled out for.
        uncertainty_penalty: lambda in ``score = discounted reward + gamma^H V - lambda * sum_h u_h``.
        iterations: propose-and-score rounds per env step; rounds after the first draw from the refined
            distribution (``refine``).
        refine: how rounds after the first refit the per-step action distribution: ``cem`` (to the
            ``elites`` best candidates) or ``mppi`` (every candidate weighted by exp(score / temperature)).
        proposal: first-round candidates from the trained ``policy`` with exploration noise, or ``uniform``
            random (legal) actions.
        noise: discrete exploration noise of the policy proposal: ``epsilon`` (each agent takes a uniformly
            random legal action with probability ``epsilon``) or ``boltzmann`` (each agent samples from
            softmax(scores / ``boltzmann_temperature``) over its legal actions; DiscreteMACQL's Q values, BC's
            logits).
        epsilon: per-agent probability of a random legal action (``noise: epsilon``), and the uniform share
            mixed into refined discrete distributions (so no legal action gets probability 0).
        boltzmann_temperature: temperature of ``noise: boltzmann``.
        noise_std: standard deviation of the Gaussian noise added to the policy's continuous actions, in
            [-1, 1] units (the initial spread of refined continuous distributions too).
        elites: candidates CEM refits to (``refine: cem``), at most ``candidates``.
        temperature: MPPI temperature of exp(score / temperature) (``refine: mppi``, ``select: mppi``).
        select: execute the first action of the ``best`` sequence, or the ``mppi``-weighted first action (per
            agent the weighted vote over the candidates' first actions, discrete; the weighted mean, continuous).
        gamma: discount of the predicted rewards and the terminal value; None: the policy's ``gamma`` (0.99
            when it has none).
        terminal_value: add the critic's value (needs a policy with a critic: DiscreteMACQL or ContinuousMACQL),
            divided by its ``reward_scale``, where ``value_at`` says.
        value_at: ``end``: ``gamma^H * Q_tot(s_H, pi(o_H))`` at the predicted end state with the policy's action;
            ``last``: ``gamma^(H-1) * Q_tot(s_{H-1}, a_{H-1})`` of the plan's own last action in place of that
            step's predicted reward (with H_p = 1 the critic scores the candidates at the real state: one
            model prediction less for the critic to read).
        include_policy: candidate 0 of the first round is the noise-free policy (so planning can fall back on it).
        sample_model: step the world model stochastically (an ensemble's random elite per row, ``sample_next``)
            with the planner's generator; False: the model's mean prediction.
    """

    world_model: str | None = None
    candidates: int = 64
    horizon: int = 5
    uncertainty_penalty: float = 1.0
    iterations: int = 1
    refine: Literal["cem", "mppi"] = "cem"
    proposal: Literal["policy", "uniform"] = "policy"
    noise: Literal["epsilon", "boltzmann"] = "epsilon"
    epsilon: float = 0.2
    boltzmann_temperature: float = 1.0
    noise_std: float = 0.3
    elites: int = 8
    temperature: float = 1.0
    select: Literal["best", "mppi"] = "best"
    gamma: float | None = None
    terminal_value: bool = True
    value_at: Literal["end", "last"] = "end"
    include_policy: bool = True
    sample_model: bool = False

    def __post_init__(self) -> None:  # the one place these options are checked
        for name in ("candidates", "horizon", "iterations", "elites"):
            if getattr(self, name) < 1:
                raise LogoError(f"planner.{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("boltzmann_temperature", "temperature", "noise_std"):
            if not getattr(self, name) > 0:
                raise LogoError(f"planner.{name}: expected a positive value, got {getattr(self, name)}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise LogoError(f"planner.epsilon: expected a probability in [0, 1], got {self.epsilon}")
        if self.uncertainty_penalty < 0:
            raise LogoError(f"planner.uncertainty_penalty: expected a value >= 0, got {self.uncertainty_penalty}")
        if self.gamma is not None and not 0.0 <= self.gamma <= 1.0:
            raise LogoError(f"planner.gamma: expected a discount in [0, 1], got {self.gamma}")
        choices = {"refine": ("cem", "mppi"), "proposal": ("policy", "uniform"), "noise": ("epsilon", "boltzmann"),
                   "select": ("best", "mppi"), "value_at": ("end", "last")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise LogoError(f"planner.{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")


def score_rollouts(rewards: torch.Tensor, dones: torch.Tensor, uncertainty: torch.Tensor,
                   terminal: torch.Tensor | None, gamma: float, penalty: float,
                   value_at: Literal["end", "last"] = "end") -> torch.Tensor:
    """Scores [R] of R model rollouts of H steps: ``sum_h gamma^h r_h + gamma^H V - penalty * sum_h u_h``.

    A branch contributes the reward and u of every step up to and including its first predicted
    termination, and (``value_at: end``) the terminal value only if it never terminated. With
    ``value_at: last``, ``terminal`` is the critic's Q of the last step's state and action, which takes the place
    of that step's reward (``gamma^(H-1) Q``) for every branch alive at that step (Q already holds the reward of a
    terminating step).

    Args:
        rewards: [H, R] predicted rewards.
        dones: [H, R] bool, predicted termination at step h.
        uncertainty: [H, R] u of each step.
        terminal: [R] value of the state after the last step, or (``last``) Q of the last step (None: no value).
        gamma: discount.
        penalty: weight of the summed u.
        value_at: where ``terminal`` applies, ``end`` or ``last`` (see above).
    """
    horizon = rewards.shape[0]
    ended_before = torch.cumsum(dones.float(), 0) - dones.float()  # [H, R] terminations before step h
    alive = (ended_before == 0).to(rewards.dtype)  # [H, R] the step is taken
    discount = gamma ** torch.arange(horizon, dtype=rewards.dtype, device=rewards.device).unsqueeze(1)  # [H, 1]
    if terminal is not None and value_at == "last":
        rewards = torch.cat([rewards[:-1], terminal.unsqueeze(0)])  # Q(s_{H-1}, a_{H-1}) replaces r_{H-1}
    score = (alive * (discount * rewards - penalty * uncertainty)).sum(0)
    if terminal is not None and value_at == "end":
        never_ended = ~dones.any(0)
        score = score + torch.where(never_ended, gamma ** horizon * terminal, torch.zeros_like(terminal))
    return score


def legal_or_all(avail: torch.Tensor | None) -> torch.Tensor | None:
    """A legal-action mask [..., A] where an agent without any legal action may take every action."""
    if avail is None:
        return None
    avail = avail.bool()
    return avail | ~avail.any(-1, keepdim=True)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of categorical(softmax(logits)) [..., A] -> [...] (Gumbel-max, seeded)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1.0 - 1e-7)
    return (logits - torch.log(-torch.log(u))).argmax(-1)


def uniform_legal(avail: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniformly random legal actions: avail [..., A] bool -> [...] int64."""
    scores = torch.rand(avail.shape, generator=generator, device=avail.device) + avail.float()
    return scores.argmax(-1)


class MPCPlanner:
    """A ``logo.envs`` Policy that plans every step in a world model (see the module docstring).

    Centralised: it reads each copy's global state. The policy module and the world model are used on
    the policy module's device; both are frozen (no gradients).

    Args:
        policy: a trained logo policy module (``act``; ``q_tot`` for ``terminal_value``).
        world_model: a trained world model of the same dataset.
        spec: the environment's spec (dims must match both modules).
        options: the planner's options.
        seed: seed of the planner's randomness (``seed()`` reseeds it; evaluation does).

    Example:
        >>> planner = MPCPlanner(load_policy("macql.ckpt"), load_world_model("logo.ckpt"), env.spec,
        ...                      MPCOptions(candidates=32, horizon=5))  # doctest: +SKIP
        >>> actions = planner.act(env.reset(seeds=[0]))  # [B, N] int64  # doctest: +SKIP
    """

    def __init__(self, policy: LightningModule, world_model: StepModel, spec: EnvSpec, options: MPCOptions,
                 seed: int = 0):
        self.policy, self.model, self.spec, self.options = policy, world_model, spec, options
        self.discrete = spec.discrete
        check_planner_fits(policy, world_model, spec, options)
        hp = getattr(policy, "hparams", {})
        self.gamma = options.gamma if options.gamma is not None else float(hp.get("gamma", 0.99))
        self.reward_scale = float(hp.get("reward_scale", 1.0))
        self.device = getattr(policy, "device", torch.device("cpu"))
        if isinstance(world_model, torch.nn.Module):
            world_model.to(self.device)
        self.low = torch.as_tensor(spec.action_low, dtype=torch.float32, device=self.device) \
            if not self.discrete else None
        self.high = torch.as_tensor(spec.action_high, dtype=torch.float32, device=self.device) \
            if not self.discrete else None
        self.seed(seed)

    # ---- the Policy protocol -------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Reseed the planner's generator (on its device) and restart its cost counters (:meth:`stats`)."""
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.seconds, self.steps, self.transitions = 0.0, 0, 0

    def act(self, ts: TimeStep) -> np.ndarray:
        """The planned first joint action of every copy: [B, N] int64 or [B, N, action_dim] float32."""
        obs = torch.as_tensor(ts.obs, dtype=torch.float32, device=self.device)
        state = torch.as_tensor(ts.state, dtype=torch.float32, device=self.device)
        avail = None if ts.avail_actions is None else torch.as_tensor(ts.avail_actions, device=self.device)
        actions = self.plan(obs, state, avail)
        return actions.cpu().numpy().astype(np.int64 if self.discrete else np.float32)

    def stats(self) -> dict[str, float]:
        """Planning cost so far: milliseconds per environment step (all copies together) and model transitions
        per second (B x K x H x iterations per step)."""
        if not self.steps:
            return {}
        return {"plan_ms_per_step": 1000.0 * self.seconds / self.steps,
                "model_transitions_per_s": self.transitions / max(self.seconds, 1e-9)}

    # ---- planning --------------------------------------------------------------------------------
    @torch.no_grad()
    def plan(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
        """First actions [B, N] (int64) or [B, N, A] of the planned sequences from obs [B, N, O], state [B, S]
        and the real legal actions avail [B, N, n_actions] (discrete)."""
        started = time.perf_counter()
        opt = self.options
        b, k = len(state), opt.candidates
        avail = legal_or_all(avail) if self.discrete else None
        if self.discrete and avail is None:
            avail = torch.ones(b, self.spec.n_agents, self.spec.n_actions, dtype=torch.bool, device=self.device)
        start = (obs.repeat_interleave(k, 0), state.repeat_interleave(k, 0),
                 None if avail is None else avail.repeat_interleave(k, 0))  # rows r = b * K + k
        best_score = torch.full((b,), -math.inf, device=self.device)
        best_seq: torch.Tensor | None = None  # [H, B, N] or [H, B, N, A] (unit box)
        dist: dict[str, torch.Tensor] | None = None
        for _ in range(opt.iterations):
            seq, score = self._rollout(*start, dist, best_seq)  # [H, R, ...], [R]
            score = score.view(b, k)
            top = score.argmax(1)  # [B]
            seq_bk = seq.view(seq.shape[0], b, k, *seq.shape[2:])
            rows = torch.arange(b, device=self.device)
            top_seq = seq_bk[:, rows, top]  # [H, B, ...]
            better = score[rows, top] > best_score
            best_score = torch.where(better, score[rows, top], best_score)
            if best_seq is None:
                best_seq = top_seq
            else:
                mask = better.view(1, b, *(1,) * (top_seq.dim() - 2))
                best_seq = torch.where(mask, top_seq, best_seq)
            if opt.iterations > 1:
                dist = self._refit(seq_bk, score)
        if opt.select == "best":
            first = best_seq[0]
        else:
            first = self._weighted_first(seq_bk[0], score, avail)
        actions = first if self.discrete else self._unscale(first)
        if self.discrete:
            legal = avail.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            if not bool(legal.all()):  # cannot happen: first steps are drawn under the real mask
                raise RuntimeError("MPCPlanner: the planned first action is illegal under the real legal actions")
        if actions.device.type == "cuda":  # time the work, not its launch
            torch.cuda.synchronize(actions.device)
        self.seconds += time.perf_counter() - started
        self.steps += 1
        self.transitions += b * k * opt.horizon * opt.iterations
        return actions

    def _rollout(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None,
                 dist: dict[str, torch.Tensor] | None, replay: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll R = B x K candidates out for H steps; -> actions [H, R, N] (int) or [H, R, N, A] (unit box), scores
        [R]. Without ``dist`` candidates come from the proposal; with it, from the refined distribution (row k=0
        of every copy replays ``replay`` [H, B, ...] where its actions are legal)."""
        opt = self.options
        generator = self.generator if opt.sample_model else None
        rewards, dones, us, seq = [], [], [], []
        last = (obs, state)
        for h in range(opt.horizon):
            if dist is None:
                actions = self._propose(obs, state, avail)
            else:
                actions = self._draw(dist, h, avail)
                if replay is not None:
                    actions = self._replay(actions, replay[h], avail)
            seq.append(actions)
            last = (obs, state)
            env_actions = actions if self.discrete else self._unscale(actions)
            out = self.model.step(obs, state, env_actions, avail, generator=generator)
            rewards.append(out.reward.float())
            dones.append(out.done.bool())
            us.append(out.uncertainty.float())
            obs, state = out.next_obs, out.next_state
            if self.discrete:
                avail = legal_or_all(out.next_avail) if out.next_avail is not None else avail
        terminal = None
        if opt.terminal_value and opt.value_at == "end":
            terminal = self._terminal_value(obs, state, avail)
        elif opt.terminal_value:
            terminal = self._q_tot(*last, env_actions)
        score = score_rollouts(torch.stack(rewards), torch.stack(dones), torch.stack(us), terminal, self.gamma,
                               opt.uncertainty_penalty, opt.value_at)
        return torch.stack(seq), score

    def _candidate_zero(self, rows: int) -> torch.Tensor:
        """[R] bool: the first candidate of every env copy."""
        return torch.arange(rows, device=self.device) % self.options.candidates == 0

    def _propose(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """First-round actions for R rows: [R, N] int64 or [R, N, A] in the unit box."""
        opt, r = self.options, len(state)
        if self.discrete:
            if opt.proposal == "uniform":
                return uniform_legal(avail, self.generator)
            greedy = self.policy.act(obs, avail_actions=avail, state=state).long()  # [R, N]
            legal = avail.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)  # a policy that ignores the mask: resample
            greedy = torch.where(legal, greedy, uniform_legal(avail, self.generator))
            if opt.noise == "epsilon":
                random = uniform_legal(avail, self.generator)
                explore = torch.rand(greedy.shape, generator=self.generator, device=self.device) < opt.epsilon
            else:
                logits = score_function(self.policy)(obs).float() / opt.boltzmann_temperature
                random = sample_categorical(logits.masked_fill(~avail, -math.inf), self.generator)
                explore = torch.ones_like(greedy, dtype=torch.bool)
            if opt.include_policy:
                explore &= ~self._candidate_zero(r).unsqueeze(1)
            return torch.where(explore, random, greedy)
        shape = (r, self.spec.n_agents, self.spec.action_dim)
        if opt.proposal == "uniform":
            return torch.rand(shape, generator=self.generator, device=self.device) * 2 - 1
        mean = self._scale(self.policy.act(obs, avail_actions=None, state=state).float())
        noise = opt.noise_std * torch.randn(shape, generator=self.generator, device=self.device)
        if opt.include_policy:
            noise = noise * (~self._candidate_zero(r)).view(r, 1, 1)
        return (mean + noise).clamp(-1.0, 1.0)

    def _refit(self, seq: torch.Tensor, score: torch.Tensor) -> dict[str, torch.Tensor]:
        """A per-step action distribution per env copy from candidates seq [H, B, K, ...] and scores [B, K]."""
        opt = self.options
        if opt.refine == "cem":
            elite = score.topk(min(opt.elites, score.shape[1]), dim=1).indices  # [B, E]
            weights = torch.zeros_like(score).scatter_(1, elite, 1.0)
            weights = weights / weights.sum(1, keepdim=True)
        else:
            weights = mppi_weights(score, opt.temperature)  # [B, K]
        if self.discrete:
            onehot = F.one_hot(seq, self.spec.n_actions).float()  # [H, B, K, N, A]
            probs = torch.einsum("bk,hbkna->hbna", weights, onehot)
            probs = (1 - opt.epsilon) * probs + opt.epsilon / self.spec.n_actions
            return {"probs": probs}
        w = weights.view(1, *weights.shape, 1, 1)
        mean = (w * seq).sum(2)  # [H, B, N, A]
        std = ((w * (seq - mean.unsqueeze(2)).square()).sum(2)).sqrt().clamp(min=0.1 * opt.noise_std)
        return {"mean": mean, "std": std}

    def _draw(self, dist: dict[str, torch.Tensor], h: int, avail: torch.Tensor | None) -> torch.Tensor:
        """Actions of step ``h`` for R rows drawn from a refined distribution (legal ones, discrete)."""
        k = self.options.candidates
        if self.discrete:
            probs = dist["probs"][h].repeat_interleave(k, 0)  # [R, N, A]
            return sample_categorical(probs.log().masked_fill(~avail, -math.inf), self.generator)
        mean, std = dist["mean"][h].repeat_interleave(k, 0), dist["std"][h].repeat_interleave(k, 0)
        noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
        return (mean + std * noise).clamp(-1.0, 1.0)

    def _replay(self, actions: torch.Tensor, best: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """Row k=0 of every copy takes the best sequence's action ``best`` [B, ...] (discrete: where legal)."""
        r = len(actions)
        zero = self._candidate_zero(r)
        target = torch.zeros_like(actions)
        target[zero] = best
        if self.discrete:
            legal = avail.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [R, N]
            return torch.where(zero.unsqueeze(1) & legal, target, actions)
        return torch.where(zero.view(r, 1, 1), target, actions)

    def _weighted_first(self, first: torch.Tensor, score: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """MPPI's first action from the candidates' first actions [B, K, ...] and scores [B, K]."""
        weights = mppi_weights(score, self.options.temperature)  # [B, K]
        if self.discrete:
            votes = torch.einsum("bk,bkna->bna", weights, F.one_hot(first, self.spec.n_actions).float())
            return votes.masked_fill(~avail, -1.0).argmax(-1)
        return (weights.view(*weights.shape, 1, 1) * first).sum(1).clamp(-1.0, 1.0)

    def _terminal_value(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """Q_tot [R] of the end states with the policy's (greedy, legal) action, in reward units."""
        return self._q_tot(obs, state, self.policy.act(obs, avail_actions=avail, state=state))

    def _q_tot(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The critic's Q_tot [R] of joint actions (environment units) at obs and state, in reward units."""
        return self.policy.q_tot(obs, state, actions).float() / self.reward_scale

    def _scale(self, actions: torch.Tensor) -> torch.Tensor:
        return 2 * (actions - self.low) / (self.high - self.low) - 1

    def _unscale(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + (unit + 1) * (self.high - self.low) / 2


def mppi_weights(score: torch.Tensor, temperature: float) -> torch.Tensor:
    """Weights [B, K] proportional to exp(score / temperature), summing to 1 per row (non-finite scores get 0)."""
    finite = torch.where(torch.isfinite(score), score, torch.full_like(score, -1e30))
    return torch.softmax(finite / temperature, dim=1)


def score_function(policy: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-agent action scores obs [B, N, O] -> [B, N, A] for Boltzmann noise: DiscreteMACQL's Q values or a BC
    policy's logits."""
    if callable(getattr(policy, "q_values", None)) and getattr(policy, "mixer", None) is not None:
        return policy.q_values
    if getattr(policy, "discrete", False) and isinstance(getattr(policy, "net", None), torch.nn.Module):
        return policy
    raise LogoError(f"planner.noise: boltzmann needs per-agent action scores (DiscreteMACQL's Q values or "
                    f"BCPolicy's logits); {type(policy).__name__} has none; use noise: epsilon")


def check_planner_fits(policy: Any, world_model: Any, spec: EnvSpec, options: MPCOptions,
                       where: str = "planner.world_model") -> None:
    """One clear LogoError for a planner that cannot work: a world model or policy of other dims than the
    environment, or a terminal value from a policy without a critic."""
    model_hp = getattr(world_model, "hparams", {})
    env_dims = linked_dims(spec, LINKED_DIMS)
    check_fits(model_hp, env_dims, f"{where} ({type(world_model).__name__})", f"{spec.family}/{spec.scenario}",
               ("world model", "environment"), hint="plan with a world model trained on this environment's dataset")
    check_fits(getattr(policy, "hparams", {}), linked_dims(spec, ACTING_DIMS), f"policy {type(policy).__name__}",
               f"{spec.family}/{spec.scenario}", ("policy", "environment"),
               hint="plan around a policy trained on this environment's dataset")
    if options.terminal_value and not callable(getattr(policy, "q_tot", None)):
        raise LogoError(f"planner.terminal_value: {type(policy).__name__} has no critic (no q_tot) to value the "
                        "end of a plan; plan around DiscreteMACQL or ContinuousMACQL, or set "
                        "planner.terminal_value: false")
    if options.noise == "boltzmann" and options.proposal == "policy" and spec.discrete:
        score_function(policy)


def load_planner_model(options: MPCOptions, spec: EnvSpec, where: str = "planner.world_model") -> WorldModel:
    """Load ``options.world_model`` and check it against the environment: its dims and, where its checkpoint
    records a readable training dataset, that dataset's environment family and scenario."""
    if not options.world_model:
        raise LogoError(f"{where}: give the checkpoint of a world model to plan in")
    try:
        model = load_world_model(options.world_model)
    except LogoError as exc:
        raise LogoError(f"{where}: {exc}") from exc
    check_fits(model.hparams, linked_dims(spec, LINKED_DIMS), f"{where} {options.world_model}",
               f"{spec.family}/{spec.scenario}", ("world model", "environment"),
               hint="plan with a world model trained on this environment's dataset")
    recorded = recorded_dataset(options.world_model)
    if recorded is not None and (recorded.env_family, recorded.scenario) != (spec.family, spec.scenario):
        raise LogoError(f"{where} {options.world_model} was trained on a dataset of "
                        f"{recorded.env_family}/{recorded.scenario}, not {spec.family}/{spec.scenario}; plan with a "
                        "world model trained on this environment's dataset")
    return model


def recorded_dataset(path: str) -> Any:
    """The ``DatasetSpec`` of the dataset a checkpoint's data module read, when it is recorded and still readable."""
    from logo.data.validate import open_dataset

    checkpoint = read_checkpoint(Path(path), f"checkpoint {path}", "check the path")
    data_path = (checkpoint.get("datamodule_hyper_parameters") or {}).get("path") \
        if isinstance(checkpoint, dict) else None
    if not data_path:
        return None
    try:
        return open_dataset(str(data_path))[1]
    except (LogoError, OSError):
        return None
