"""The rollout routine (Lightning-free) and `logo rollout`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo.cli import main
from logo.data.reader import OfflineDataset, gather_transitions
from logo.world_model import load_world_model, rollout
from logo.world_model.model_rollout import StepResult, UniformPolicy
from tests.world_model.conftest import datamodule


class CountdownModel:
    """A tiny exact model: state[:, 0] counts down by one per step and the branch terminates at 0;
    only even actions are legal afterwards; u is the step count so far."""

    def __init__(self, n_agents: int = 2, n_actions: int = 4):
        self.n_agents, self.n_actions = n_agents, n_actions

    def step(self, obs, state, actions, avail_actions=None, generator=None) -> StepResult:
        nxt = state.clone()
        nxt[:, 0] -= 1
        nxt[:, 1] += 1
        avail = torch.zeros(len(state), self.n_agents, self.n_actions, dtype=torch.bool)
        avail[..., ::2] = True
        return StepResult(next_obs=obs + 1, next_state=nxt, reward=actions.float().sum(-1), done=nxt[:, 0] <= 0,
                          next_avail=avail, uncertainty=nxt[:, 1])


def countdown_start(counts: list[int]) -> dict[str, torch.Tensor]:
    b = len(counts)
    state = torch.zeros(b, 2)
    state[:, 0] = torch.tensor(counts, dtype=torch.float32)
    return {"obs": torch.zeros(b, 2, 3), "state": state, "avail_actions": torch.ones(b, 2, 4, dtype=torch.bool)}


def test_branches_stop_at_their_first_termination():
    policy = UniformPolicy(2, 4, discrete=True, generator=torch.Generator().manual_seed(0))
    result = rollout(CountdownModel(), policy, countdown_start([1, 3, 10]), horizon=5)
    assert result.horizon == 5
    assert result.alive.T.tolist() == [[True, False, False, False, False], [True, True, True, False, False],
                                       [True] * 5]
    flat = result.transitions()
    assert len(flat["rewards"]) == 1 + 3 + 5
    # terminal flags sit on each stopped branch's last alive step; the survivor is truncated at the horizon
    assert result.terminals[0, 0] == 1 and result.terminals[2, 1] == 1 and result.terminals[:, 2].sum() == 0
    assert result.truncations[4, 2] == 1 and result.truncations[:4].sum() == 0
    assert torch.equal(flat["uncertainty"], flat["next_state"][:, 1])


def test_branches_stop_where_u_passes_a_multiple_of_the_first_steps_mean():
    policy = UniformPolicy(2, 4, discrete=True, generator=torch.Generator().manual_seed(0))
    start = countdown_start([20, 20, 20])
    start["state"][:, 1] = torch.tensor([0.0, 2.0, 5.0])  # u = 1, 3, 6 at the first step: mean 10/3
    result = rollout(CountdownModel(), policy, start, horizon=8, stop_uncertainty=1.5)  # threshold u <= 5
    assert result.alive.sum(0).tolist() == [5, 3, 0]  # u 1..5 kept; u 3, 4, 5 kept; u 6 dropped at once
    assert float(result.transitions()["uncertainty"].max()) <= 5.0
    unlimited = rollout(CountdownModel(), policy, countdown_start([20, 20, 20]), horizon=8)
    assert bool(unlimited.alive.all())


def test_rollout_ends_early_when_every_branch_has_terminated():
    policy = UniformPolicy(2, 4, discrete=True, generator=torch.Generator().manual_seed(0))
    result = rollout(CountdownModel(), policy, countdown_start([2, 2]), horizon=15)
    assert result.horizon == 2 and bool(result.terminals[-1].all())


def test_actions_respect_the_predicted_legal_masks():
    policy = UniformPolicy(2, 4, discrete=True, generator=torch.Generator().manual_seed(0))
    result = rollout(CountdownModel(), policy, countdown_start([20] * 64), horizon=6)
    assert bool((result.actions[1:] % 2 == 0).all()), "after the first step only even actions are legal"
    assert bool((result.actions[0] % 2 == 1).any()), "the first step used the start's own (all-legal) mask"


def test_an_illegal_action_is_refused():
    def always_one(obs, avail_actions=None, state=None):
        return torch.ones(len(obs), 2, dtype=torch.long)

    with pytest.raises(ValueError, match="legal-action mask forbids"):
        rollout(CountdownModel(), always_one, countdown_start([5]), horizon=3)
    with pytest.raises(ValueError, match="horizon"):
        rollout(CountdownModel(), always_one, countdown_start([5]), horizon=0)


def test_trained_logo_rolls_out_with_its_own_legal_masks(trained_logo, discrete_dataset):
    model = load_world_model(trained_logo)
    dm = datamodule(discrete_dataset)
    start = gather_transitions(dm.storage_on(torch.device("cpu")), dm.val_indices[:128])
    gen = torch.Generator().manual_seed(0)
    policy = UniformPolicy(model.n_agents, model.action_size, True, generator=gen)
    result = rollout(model, policy, start, horizon=15, generator=gen)
    flat = result.transitions()
    chosen = flat["avail_actions"].gather(-1, flat["actions"].unsqueeze(-1)).squeeze(-1)
    assert bool(chosen.all())
    assert bool((flat["uncertainty"] > 0).all())
    # after a predicted termination a branch contributes nothing
    done_at = result.terminals.bool() & result.alive
    for h, b in done_at.nonzero().tolist():
        assert not bool(result.alive[h + 1:, b].any())


def test_logo_rollout_writes_a_valid_dataset_with_uncertainty(trained_logo, discrete_dataset, tmp_path, capsys):
    out = tmp_path / "rollouts.zarr"
    code = main(["rollout", "--checkpoint", str(trained_logo), "--data", str(discrete_dataset), "--out", str(out),
                 "--horizon", "15", "--starts", "40", "--seed", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "40 starts" in printed
    data = OfflineDataset.load(out)  # validates
    assert data.n_episodes == 40 and data.spec.quality == "synthetic"
    lengths = np.diff(data.episode_bounds())
    assert lengths.max() <= 15 and lengths.min() >= 1
    ends_terminated = data.arrays["terminals"][data.episode_bounds()[1:] - 1]
    assert np.all(ends_terminated | (lengths == 15))
    import zarr
    u = zarr.open_group(str(out), mode="r")["uncertainty"][:]
    assert u.shape == (data.n_transitions,) and np.all(u > 0)
    assert data.attrs["rollout"]["world_model"] == "LogoWorldModel" and data.attrs["rollout"]["horizon"] == 15


def test_logo_rollout_refuses_bad_input(trained_logo, continuous_dataset, discrete_dataset, tmp_path, capsys):
    assert main(["rollout", "--checkpoint", str(trained_logo), "--data", str(continuous_dataset),
                 "--out", str(tmp_path / "x.zarr")]) == 2
    assert "does not fit dataset" in capsys.readouterr().err
    assert main(["rollout", "--checkpoint", str(trained_logo), "--data", str(discrete_dataset),
                 "--out", str(tmp_path / "y.zarr"), "--horizon", "0"]) == 2
    assert "horizon" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "y.zarr").exists()
