"""The MPC planner on hand-built world models whose best plans are known, and on real (untrained) logo modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo.envs.base import EnvSpec, TimeStep
from logo.errors import LogoError
from logo.planning import MPCOptions, MPCPlanner, score_rollouts
from logo.planning.mpc import load_planner_model
from logo.policy import BCPolicy, DiscreteMACQL
from logo.world_model import LogoWorldModel
from logo.world_model.model_rollout import StepResult

N, A = 2, 3  # agents, discrete actions
SPEC = EnvSpec(family="hand", scenario="built", n_agents=N, obs_dim=2, state_dim=2, action_kind="discrete",
               n_actions=A, max_steps=10)
CSPEC = EnvSpec(family="hand", scenario="built", n_agents=N, obs_dim=2, state_dim=2, action_kind="continuous",
                action_dim=1, action_low=(-2.0,), action_high=(2.0,), max_steps=10)


class ChargeModel:
    """A hand-built discrete world model. Each agent's action a_i earns ``reward[a_i]`` with uncertainty ``u[a_i]``;
    when ``charge`` is set, a joint action of all 1s charges the state (state[0] = 1) and in a charged state
    action 2 earns ``charged`` instead. ``terminal_action`` ends the episode when any agent takes it.
    ``next_legal`` [A] bool is the legal-action head's output. Records every legality violation it sees."""

    def __init__(self, reward=(0.0, 0.0, 0.5), u=(0.0, 0.0, 0.0), charge=False, charged=1.5, terminal_action=None,
                 next_legal=(True, True, True)):
        self.reward, self.u = torch.tensor(reward), torch.tensor(u)
        self.charge, self.charged, self.terminal_action = charge, charged, terminal_action
        self.next_legal = torch.tensor(next_legal)
        self.violations = 0
        self.calls = 0

    def step(self, obs, state, actions, avail_actions=None, generator=None) -> StepResult:
        self.calls += 1
        if avail_actions is not None:
            self.violations += int((~avail_actions.gather(-1, actions.unsqueeze(-1))).sum())
        charged = state[:, 0] > 0.5  # [R]
        per_agent = torch.where(charged.unsqueeze(1) & (actions == 2), torch.tensor(self.charged),
                                self.reward[actions])  # [R, N]
        next_state = state.clone()
        if self.charge:
            next_state[:, 0] = torch.where((actions == 1).all(1), 1.0, state[:, 0])
        done = (actions == self.terminal_action).any(1) if self.terminal_action is not None \
            else torch.zeros(len(state), dtype=torch.bool)
        return StepResult(next_obs=obs, next_state=next_state, reward=per_agent.sum(1), done=done,
                          next_avail=self.next_legal.expand(len(state), N, A).clone(),
                          uncertainty=self.u[actions].sum(1))


class FixedPolicy:
    """A hand-built policy: every agent takes ``action``; ``q_tot`` is ``value`` times state[0] (no hparams)."""

    def __init__(self, action: int = 0, value: float = 0.0):
        self.action, self.value = action, value

    def act(self, obs, avail_actions=None, state=None):
        return torch.full(obs.shape[:2], self.action, dtype=torch.long)

    def q_tot(self, obs, state, actions):
        return self.value * state[:, 0]


def timestep(batch: int = 1, avail: np.ndarray | None = None, spec: EnvSpec = SPEC) -> TimeStep:
    zeros = np.zeros(batch, np.float32)
    if avail is None and spec.discrete:
        avail = np.ones((batch, N, A), bool)
    return TimeStep(obs=np.zeros((batch, N, 2), np.float32), state=np.zeros((batch, 2), np.float32), reward=zeros,
                    terminated=zeros.astype(bool), truncated=zeros.astype(bool), avail_actions=avail)


def plan(model, policy=None, spec=SPEC, ts=None, **options) -> np.ndarray:
    options = {"terminal_value": False, "proposal": "uniform", "candidates": 256, "horizon": 1, **options}
    planner = MPCPlanner(policy or FixedPolicy(), model, spec, MPCOptions(**options), seed=0)
    return planner.act(ts if ts is not None else timestep(spec=spec))


def test_score_rollouts_by_hand():
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])  # [H=3, R=2]
    dones = torch.tensor([[False, False], [False, True], [False, False]])  # branch 1 ends at step 1
    u = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    terminal = torch.tensor([10.0, 10.0])
    score = score_rollouts(rewards, dones, u, terminal, gamma=0.5, penalty=2.0)
    # branch 0: 1 + 0.5 * 2 + 0.25 * 4 + 0.125 * 10 - 2 * 1.5; branch 1: 1 + 0.5 * 2 - 2 * 1.0, no value
    assert score.tolist() == pytest.approx([1 + 1 + 1 + 1.25 - 3.0, 1 + 1 - 2.0])
    assert score_rollouts(rewards, dones, u, None, 1.0, 0.0).tolist() == pytest.approx([7.0, 3.0])
    # value_at last: Q of the last step replaces its reward, for branches alive at that step (branch 1 is not)
    last = score_rollouts(rewards, dones, u, terminal, gamma=0.5, penalty=0.0, value_at="last")
    assert last.tolist() == pytest.approx([1 + 1 + 0.25 * 10, 1 + 1])
    ended_last = torch.tensor([[False], [False], [True]])  # a termination at the last step keeps its Q
    assert score_rollouts(rewards[:, :1], ended_last, u[:, :1], terminal[:1], 1.0, 0.0, "last").item() == 13.0


def test_the_planner_finds_the_known_best_action_and_plans_ahead():
    assert plan(ChargeModel()).tolist() == [[2, 2]]  # one step: the immediate reward
    # two steps: charging first (0 now, then 2 x 1.5) beats 2 x 0.5 twice; the greedy first action loses
    model = ChargeModel(charge=True)
    assert plan(model, horizon=2, gamma=1.0).tolist() == [[1, 1]]
    assert plan(model, horizon=1, gamma=1.0).tolist() == [[2, 2]]
    # batched over env copies: each copy plans on its own (copy 1 cannot take action 1 for agent 0)
    avail = np.ones((2, N, A), bool)
    avail[1, 0, 1] = False
    chosen = plan(model, horizon=2, gamma=1.0, ts=timestep(2, avail))
    assert chosen[0].tolist() == [1, 1] and chosen[1].tolist() == [2, 2]


def test_cem_and_mppi_refinement_find_the_best_action_from_few_candidates():
    # 3 uniform candidates out of 9 joint actions: one round misses [2, 2] on most seeds, refined rounds find it
    model = ChargeModel(reward=(0.0, 0.3, 1.0))

    def hits(**options) -> int:
        found = 0
        for seed in range(12):
            planner = MPCPlanner(FixedPolicy(), model, SPEC, MPCOptions(
                terminal_value=False, proposal="uniform", candidates=3, horizon=1, elites=1, epsilon=0.3,
                temperature=0.1, **options), seed=seed)
            found += planner.act(timestep()).tolist() == [[2, 2]]
        return found

    assert hits(iterations=1) <= 4
    for refine, select in (("cem", "best"), ("mppi", "mppi"), ("mppi", "best")):
        assert hits(iterations=5, refine=refine, select=select) >= 9, (refine, select)


def test_a_policy_proposal_keeps_the_policy_when_nothing_beats_it():
    # every action earns the same: candidate 0 (the noise-free policy) is kept as the first best
    assert plan(ChargeModel(reward=(1.0, 1.0, 1.0)), FixedPolicy(action=1), proposal="policy",
                epsilon=0.5).tolist() == [[1, 1]]
    # a better action within epsilon's reach is found
    assert plan(ChargeModel(), FixedPolicy(action=0), proposal="policy", epsilon=0.5).tolist() == [[2, 2]]


def test_illegal_actions_are_never_executed_nor_planned():
    # the real env forbids the model's best action for agent 0: the best legal one instead
    avail = np.ones((1, N, A), bool)
    avail[0, 0, 2] = False
    assert plan(ChargeModel(reward=(0.0, 0.3, 1.0)), ts=timestep(1, avail)).tolist() == [[1, 2]]
    # random real masks, every proposal, refinement and selection: every executed action is legal, and every
    # planned step after the first is legal under the model's legal-action head (here: action 2 never legal)
    rng = np.random.default_rng(0)
    model = ChargeModel(reward=(0.0, 0.3, 1.0), next_legal=(True, True, False))
    for trial in range(24):
        avail = rng.random((4, N, A)) < 0.5
        avail[0, 1] = False  # an agent without any legal action (a finished copy) may take any
        options = {"proposal": ("policy", "uniform")[trial % 2], "select": ("best", "mppi")[trial // 2 % 2],
                   "iterations": 1 + trial % 3, "noise": ("epsilon", "boltzmann")[trial // 4 % 2]}
        policy = BCPolicy(N, 2, 2, "discrete", A, hidden_sizes=[8]) if options["noise"] == "boltzmann" \
            else FixedPolicy(action=2)
        chosen = plan(model, policy, ts=timestep(4, avail), horizon=3, candidates=8, **options)
        legal = np.take_along_axis(avail | ~avail.any(-1, keepdims=True), chosen[..., None], -1)[..., 0]
        assert legal.all(), (trial, options)
    assert model.violations == 0 and model.calls > 0


def test_the_uncertainty_penalty_changes_the_choice():
    # action 2: reward 1.0, u 1.0; action 1: reward 0.6, u 0 (per agent)
    model = ChargeModel(reward=(0.0, 0.6, 1.0), u=(0.0, 0.0, 1.0))
    assert plan(model, uncertainty_penalty=0.0).tolist() == [[2, 2]]
    assert plan(model, uncertainty_penalty=1.0).tolist() == [[1, 1]]
    assert plan(model, uncertainty_penalty=0.3).tolist() == [[2, 2]]  # 1.0 - 0.3 > 0.6


def test_a_predicted_termination_ends_the_branch():
    # action 2 earns 1.0 but ends the episode; action 1 earns 0.4 per step for three steps
    model = ChargeModel(reward=(0.0, 0.4, 1.0), terminal_action=2)
    assert plan(model, horizon=1, gamma=1.0).tolist() == [[2, 2]]
    assert plan(model, horizon=3, gamma=1.0, candidates=512).tolist() == [[1, 1]]


def test_the_terminal_value_counts_at_the_end_of_the_plan():
    # action 1 (all agents) earns nothing now but charges the state, which the critic values at 10
    model, critic = ChargeModel(reward=(0.0, 0.0, 0.5), charge=True), FixedPolicy(value=10.0)
    assert plan(model, critic, terminal_value=False).tolist() == [[2, 2]]
    assert plan(model, critic, terminal_value=True, gamma=0.9).tolist() == [[1, 1]]
    # value_at last: the critic's Q of step 1 (10 in the charged state) replaces step 1's reward
    assert plan(model, critic, terminal_value=True, value_at="last", horizon=2, gamma=1.0).tolist() == [[1, 1]]


class BowlModel:
    """A hand-built continuous world model: reward -sum_i (a_i - target)^2, u 0."""

    def __init__(self, target: float):
        self.target = target

    def step(self, obs, state, actions, avail_actions=None, generator=None) -> StepResult:
        reward = -(actions[..., 0] - self.target).square().sum(1)
        return StepResult(next_obs=obs, next_state=state, reward=reward, done=torch.zeros(len(state), dtype=torch.bool),
                          next_avail=None, uncertainty=torch.zeros(len(state)))


class ConstantContinuous:
    def act(self, obs, avail_actions=None, state=None):
        return torch.full((*obs.shape[:2], 1), -1.5)


def test_continuous_planning_moves_towards_the_best_action_within_the_bounds():
    for options in ({"refine": "cem", "select": "best"}, {"refine": "mppi", "select": "mppi", "temperature": 0.05}):
        def error(iterations: int, options=options) -> float:
            chosen = plan(BowlModel(1.2), ConstantContinuous(), spec=CSPEC, proposal="policy", candidates=64,
                          iterations=iterations, noise_std=0.5, elites=8, **options)
            assert chosen.shape == (1, N, 1) and chosen.dtype == np.float32
            return float(np.abs(chosen - 1.2).max())

        assert error(8) < 0.3 and error(8) < error(1) - 0.3, options  # the policy's -1.5 is 2.7 away
    out_of_bounds = plan(BowlModel(5.0), ConstantContinuous(), spec=CSPEC, candidates=64, iterations=3)
    assert (out_of_bounds <= 2.0).all() and (out_of_bounds > 1.8).all()


def real_modules(seed: int = 0):
    torch.manual_seed(seed)
    model = LogoWorldModel(n_agents=N, obs_dim=2, state_dim=2, action_kind="discrete", action_size=A,
                           hidden_sizes=[16], latent_dim=8).eval()
    policy = DiscreteMACQL(N, 2, 2, "discrete", A, hidden_sizes=[16]).eval()
    return model, policy


def random_steps(batch: int, count: int, legal: float, seed: int = 1) -> list[TimeStep]:
    """``count`` time steps of ``batch`` copies with random observations, states and legal-action masks (each
    action legal with probability ``legal``)."""
    rng = np.random.default_rng(seed)
    return [TimeStep(obs=rng.normal(size=(batch, N, 2)).astype(np.float32),
                     state=rng.normal(size=(batch, 2)).astype(np.float32), reward=np.zeros(batch, np.float32),
                     terminated=np.zeros(batch, bool), truncated=np.zeros(batch, bool),
                     avail_actions=rng.random((batch, N, A)) < legal) for _ in range(count)]


def test_the_planner_is_deterministic_under_a_seed_with_real_modules():
    model, policy = real_modules()
    options = MPCOptions(candidates=16, horizon=3, iterations=2, epsilon=0.5, terminal_value=True)
    steps = random_steps(batch=3, count=6, legal=0.7)

    def run(seed: int) -> np.ndarray:
        planner = MPCPlanner(policy, model, SPEC, options)
        planner.seed(seed)
        return np.stack([planner.act(ts) for ts in steps])

    first = run(3)
    np.testing.assert_array_equal(first, run(3))
    assert any(not np.array_equal(first, run(seed)) for seed in range(4, 10))
    planner = MPCPlanner(policy, model, SPEC, options)
    planner.act(steps[0])
    stats = planner.stats()
    assert stats["plan_ms_per_step"] > 0 and stats["model_transitions_per_s"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_planner_runs_on_cuda_legal_deterministic_and_on_the_device():
    """The same planning as on the CPU with the modules on a CUDA device: its tensors live there, every executed
    action is legal, and a seed repeats its choices (the CUDA generator's stream differs from the CPU's)."""
    model, policy = real_modules()
    model, policy = model.cuda(), policy.cuda()
    options = MPCOptions(candidates=16, horizon=3, iterations=2, epsilon=0.5, terminal_value=True)
    steps = random_steps(batch=8, count=4, legal=0.6)
    for ts in steps:
        ts.avail_actions[..., 0] |= ~ts.avail_actions.any(-1)  # at least one legal action per agent

    def run(seed: int) -> np.ndarray:
        planner = MPCPlanner(policy, model, SPEC, options)
        planner.seed(seed)
        assert planner.device.type == "cuda" and planner.generator.device.type == "cuda"
        return np.stack([planner.act(ts) for ts in steps])

    chosen = run(3)
    np.testing.assert_array_equal(chosen, run(3))
    avail = np.stack([ts.avail_actions for ts in steps])  # [T, B, N, A]
    assert np.take_along_axis(avail, chosen[..., None], -1).all()
    planner = MPCPlanner(policy, model, SPEC, options)
    planner.act(steps[0])
    assert planner.stats()["plan_ms_per_step"] > 0


def test_bad_planner_input_gets_one_clear_error_naming_the_option(tmp_path):
    with pytest.raises(LogoError, match="planner.candidates: expected a positive integer, got 0"):
        MPCOptions(candidates=0)
    with pytest.raises(LogoError, match="planner.horizon"):
        MPCOptions(horizon=0)
    with pytest.raises(LogoError, match="planner.refine"):
        MPCOptions(refine="nope")
    model, policy = real_modules()
    other = LogoWorldModel(n_agents=N, obs_dim=5, state_dim=2, action_kind="discrete", action_size=A,
                           hidden_sizes=[16], latent_dim=8)
    with pytest.raises(LogoError, match=r"planner.world_model .*obs_dim: world model 5, environment 2"):
        MPCPlanner(policy, other, SPEC, MPCOptions())
    bc = BCPolicy(N, 2, 2, "discrete", A, hidden_sizes=[8])
    with pytest.raises(LogoError, match="planner.terminal_value: BCPolicy has no critic"):
        MPCPlanner(bc, model, SPEC, MPCOptions(terminal_value=True))
    MPCPlanner(bc, model, SPEC, MPCOptions(terminal_value=False))  # fine without a terminal value
    with pytest.raises(LogoError, match="planner.noise: boltzmann"):
        MPCPlanner(FixedPolicy(), model, SPEC, MPCOptions(noise="boltzmann"))
    with pytest.raises(LogoError, match="planner.world_model: give the checkpoint"):
        load_planner_model(MPCOptions(), SPEC)
    with pytest.raises(LogoError, match="planner.world_model: .*no such file"):
        load_planner_model(MPCOptions(world_model=str(tmp_path / "nope.ckpt")), SPEC)


def test_q_tot_of_the_macqls_is_their_critics_value_of_the_given_actions():
    from logo.policy import ContinuousMACQL

    torch.manual_seed(0)
    policy = DiscreteMACQL(N, 2, 2, "discrete", A, hidden_sizes=[16]).eval()
    obs, state = torch.randn(5, N, 2), torch.randn(5, 2)
    actions = torch.randint(A, (5, N))
    batch = {"obs": obs, "state": state, "actions": actions, "rewards": torch.zeros(5), "next_obs": obs,
             "next_state": state, "terminals": torch.zeros(5)}
    torch.testing.assert_close(policy.q_tot(obs, state, actions), policy.losses(batch)["q_data"])
    continuous = ContinuousMACQL(N, 2, 2, "continuous", 1, hidden_sizes=[16]).eval()
    raw = torch.rand(5, N, 1) * 2 - 1
    q1, q2 = continuous.q_values(continuous.critic, state, continuous.scale_actions(raw))
    torch.testing.assert_close(continuous.q_tot(obs, state, raw), torch.min(q1, q2))
