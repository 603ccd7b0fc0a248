"""Continuous MACQL: its losses alone, a real Lightning fit, checkpoint reload and gradient isolation."""

from __future__ import annotations

import math

import lightning
import pytest
import torch

from logo.data import OfflineMARLDataModule
from logo.errors import LogoError
from logo.nn import tanh_gaussian_sample
from logo.policy.checkpoint import load_policy
from logo.policy.macql_continuous import ContinuousMACQL
from logo.policy.macql_losses import cql_continuous_penalty

TRAINER = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False)


def _model(dm: OfflineMARLDataModule, **kwargs) -> ContinuousMACQL:
    return ContinuousMACQL(dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size,
                           hidden_sizes=[64, 64], **kwargs)


# ---- losses -------------------------------------------------------------------------------------


def test_cql_penalty_on_a_hand_computed_case():
    # 1-D actions on [-1, 1]: uniform log density -log 2; Q(random) = 1, 2; one policy action with
    # Q = 3, log-prob 0.5; Q(data) = 2.
    # scores = [1 + log 2, 2 + log 2, 3 - 0.5] = [1.693147, 2.693147, 2.5]
    # exp    = [5.436564, 14.778112, 12.182494], sum 32.397170, log 3.478071
    # penalty = 3.478071 - log 3 (1.098612) - 2 = 0.379459
    penalty = cql_continuous_penalty(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]]), torch.tensor([2.0]),
                                     -math.log(2.0), torch.tensor([[0.5]]))
    assert penalty.shape == (1,)
    torch.testing.assert_close(penalty, torch.tensor([0.379459]), atol=1e-5, rtol=0)


def test_cql_penalty_sign_and_monotonicity():
    dim = 6  # a joint action of 3 agents x 2 dims
    log_density = -dim * math.log(2.0)
    q = torch.full((4, 5), 1.5)
    # constant Q and a uniform "policy": the estimate of log integral exp Q is exact, the penalty is log volume >= 0
    penalty = cql_continuous_penalty(q, q, torch.full((4,), 1.5), log_density, torch.full((4, 5), log_density))
    torch.testing.assert_close(penalty, torch.full((4,), dim * math.log(2.0)))
    # lower Q at the data action: larger penalty, one for one
    q_random, q_policy, log_prob = torch.randn(4, 5), torch.randn(4, 3), torch.randn(4, 3)
    q_data = torch.randn(4)
    high = cql_continuous_penalty(q_random, q_policy, q_data, log_density, log_prob)
    low = cql_continuous_penalty(q_random, q_policy, q_data - 1.0, log_density, log_prob)
    torch.testing.assert_close(low, high + 1.0)
    # per-sample log densities [B, K1] broadcast like the scalar
    same = cql_continuous_penalty(q_random, q_policy, q_data, torch.full((4, 5), log_density), log_prob)
    torch.testing.assert_close(same, high)


def test_cql_penalty_estimates_the_log_integral_with_uniform_samples():
    # Q(a) = a on [-1, 1]: log integral exp(a) da = log(e - 1/e) = 0.85459; Q(data) = 0 leaves just that
    a = torch.rand(1, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    penalty = cql_continuous_penalty(a, a[:, :0], torch.zeros(1, dtype=torch.float64), -math.log(2.0), a[:, :0])
    assert abs(penalty.item() - math.log(math.e - 1 / math.e)) < 5e-3


def test_tanh_gaussian_sample_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(7, 3, 2, generator=g)
    log_std = torch.rand(7, 3, 2, generator=g) - 1.0  # in [-1, 0]
    action, log_prob = tanh_gaussian_sample(mean, log_std, generator=torch.Generator().manual_seed(5))
    assert action.shape == (7, 3, 2) and log_prob.shape == (7,)
    assert bool((action.abs() < 1).all())
    # brute force in float64: the same noise, Normal log density minus log |d tanh / du|
    noise = torch.randn(7, 3, 2, generator=torch.Generator().manual_seed(5)).double()
    u = mean.double() + log_std.double().exp() * noise
    base = torch.distributions.Normal(mean.double(), log_std.double().exp())
    expected = (base.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)).sum((-2, -1))
    torch.testing.assert_close(action.double(), torch.tanh(u), atol=1e-6, rtol=0)
    torch.testing.assert_close(log_prob.double(), expected, atol=1e-4, rtol=0)
    # same seed, same sample; another seed, another sample; deterministic gives tanh(mean)
    again, again_log_prob = tanh_gaussian_sample(mean, log_std, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, action) and torch.equal(again_log_prob, log_prob)
    other, _ = tanh_gaussian_sample(mean, log_std, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other, action)
    mode, _ = tanh_gaussian_sample(mean, log_std, deterministic=True)
    torch.testing.assert_close(mode, torch.tanh(mean))


def test_tanh_gaussian_log_prob_is_finite_for_saturated_actions():
    mean = torch.full((2, 1, 1), 30.0, requires_grad=True)
    action, log_prob = tanh_gaussian_sample(mean, torch.full((2, 1, 1), -5.0))
    log_prob.sum().backward()
    assert bool(torch.isfinite(log_prob).all()) and bool(torch.isfinite(mean.grad).all())
    assert bool((action <= 1).all())


# ---- the learner --------------------------------------------------------------------------------


def test_fit_learns_critics_acts_in_bounds_and_reloads(continuous_dataset, tmp_path):
    lightning.seed_everything(0)
    dm = OfflineMARLDataModule(str(continuous_dataset), batch_size=64, steps_per_epoch=100)
    # a short horizon and a fast target, so that 300 updates are enough for the TD error to fall
    model = _model(dm, gamma=0.5, tau=0.05, cql_alpha=1.0)
    before = lightning.Trainer(inference_mode=False, **TRAINER).validate(model, dm, verbose=False)[0]["val/loss"]
    trainer = lightning.Trainer(max_steps=300, **TRAINER)
    trainer.fit(model, dm)
    assert trainer.global_step == 300
    metrics = trainer.callback_metrics
    for name in ("train/td", "train/cql", "train/q_data", "train/actor_loss", "train/loss",
                 "train/entropy_alpha", "train/log_prob", "val/loss", "val/q_data"):
        assert name in metrics and math.isfinite(metrics[name].item()), name
    after = metrics["val/loss"].item()
    assert after < 0.5 * before, f"held-out TD error did not fall: {before:.3f} -> {after:.3f}"

    batch = dm.on_after_batch_transfer(dm.val_indices, 0)  # held-out real transitions
    model.eval()
    actions = model.act(batch["obs"])
    assert actions.shape == (len(dm.val_indices), 3, 2)
    assert bool((actions >= dm.statistics["action_low"]).all() and (actions <= dm.statistics["action_high"]).all())
    sampled = model.rollout_act(batch["obs"], generator=torch.Generator().manual_seed(1))
    assert torch.equal(sampled, model.rollout_act(batch["obs"], generator=torch.Generator().manual_seed(1)))
    assert bool((sampled.abs() <= 1).all())
    # conservative: the critic ranks the data's joint actions above uniformly random ones
    with torch.no_grad():
        q_data, _ = model.q_values(model.critic, batch["state"], model.scale_actions(batch["actions"]))
        q_random, _ = model.q_values(model.critic, batch["state"], torch.rand(len(q_data), 8, 3, 2) * 2 - 1)
    assert q_data.mean() > q_random.mean()

    path = tmp_path / "macql.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_policy(path)
    assert type(loaded) is ContinuousMACQL
    torch.testing.assert_close(loaded.obs_norm.mean, dm.statistics["obs_mean"])
    assert torch.equal(loaded.act(batch["obs"]), actions)


def test_actor_loss_never_reaches_the_critic(continuous_dataset):
    dm = OfflineMARLDataModule(str(continuous_dataset))
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(dm.train_indices[:32], 0)
    model = _model(dm)
    actor_loss, _ = model.actor_loss(batch)
    assert actor_loss.shape == (32,)
    actor_loss.mean().backward()
    assert all(p.grad is None for p in model.critic.parameters())
    assert all(p.requires_grad for p in model.critic.parameters())  # unfrozen again afterwards
    assert model.log_alpha.grad is None  # the temperature is detached in the actor loss
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.actor.parameters())
    # and the critic's loss (TD target and CQL samples included) never reaches the actor
    model.zero_grad(set_to_none=True)
    losses = model.critic_losses(batch)
    (losses["td"] + losses["cql"]).mean().backward()
    assert all(p.grad is None for p in model.actor.parameters())
    assert all(p.grad is not None for p in model.critic.parameters())
    assert all(p.grad is None for p in model.critic_target.parameters())


def test_discrete_data_is_refused(discrete_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset))
    with pytest.raises(LogoError, match="continuous"):
        _model(dm)
