"""LOGO, the direct joint model and the ensemble: shapes, losses, uncertainty, units and checkpoints."""

from __future__ import annotations

import pytest
import torch

from logo.cli import LogoCLI
from logo.data.reader import gather_transitions
from logo.dims import linked_dims
from logo.errors import LogoError
from logo.world_model import DirectWorldModel, EnsembleWorldModel, LogoWorldModel, load_world_model
from logo.world_model.joint import logo_parameter_count
from logo.world_model.losses import gaussian_nll
from logo.world_model.open_loop import open_loop_errors, open_loop_starts
from tests.conftest import ROOT
from tests.world_model.conftest import SMALL, build, datamodule, fit

MODELS = [LogoWorldModel, DirectWorldModel, EnsembleWorldModel]


def batch_of(dm, n: int, seed: int = 0, split: str = "train") -> dict[str, torch.Tensor]:
    indices = dm.train_indices if split == "train" else dm.val_indices
    pick = torch.randint(len(indices), (n,), generator=torch.Generator().manual_seed(seed))
    return gather_transitions(dm.storage_on(torch.device("cpu")), indices[pick])


@pytest.mark.parametrize("cls", MODELS)
def test_step_shapes_and_types(cls, dataset):
    dm = datamodule(dataset)
    model = build(cls, dm)
    b = batch_of(dm, 16)
    out = model.step(b["obs"], b["state"], b["actions"], b.get("avail_actions"),
                     generator=torch.Generator().manual_seed(0))
    n, o, s = dm.n_agents, dm.obs_dim, dm.state_dim
    assert out.next_obs.shape == (16, n, o) and out.next_state.shape == (16, s)
    assert out.reward.shape == (16,) and out.done.dtype == torch.bool and out.done.shape == (16,)
    assert out.uncertainty.shape == (16,) and bool((out.uncertainty >= 0).all())
    if dm.action_kind == "discrete":
        assert out.next_avail.shape == (16, n, dm.action_size) and out.next_avail.dtype == torch.bool
        assert bool(out.next_avail.any(-1).all()), "every agent needs at least one legal action"
    else:
        assert out.next_avail is None
    # clipped to the training data's bounding box
    assert bool((out.next_state <= model.state_high + 1e-6).all() and (out.next_state >= model.state_low - 1e-6).all())


@pytest.mark.parametrize("cls", MODELS)
def test_every_loss_term_is_finite_and_decreases_on_a_tiny_overfit(cls, dataset):
    torch.manual_seed(0)
    dm = datamodule(dataset)
    model = build(cls, dm)
    batch = batch_of(dm, 128)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first = {k: float(v) for k, v in model._parts(batch)[2].items()}
    for _ in range(150):
        parts = model._parts(batch)[2]
        optimiser.zero_grad()
        parts["loss"].backward()
        optimiser.step()
    with torch.no_grad():
        last = {k: float(v) for k, v in model._parts(batch)[2].items()}
    expected = {"loss", "termination"} | ({"legal"} if dm.action_kind == "discrete" else set())
    expected |= ({"predictive_nll", "predictive_recon", "deductive_nll", "deductive_recon", "coupling", "latent",
                  "aux_state"} if cls is LogoWorldModel else {"nll"})
    assert set(first) == expected
    for name in expected:
        assert torch.isfinite(torch.tensor([first[name], last[name]])).all(), name
        assert last[name] < first[name], f"{cls.__name__} {name}: {first[name]:.4f} -> {last[name]:.4f}"


def test_logo_uncertainty_is_positive_and_larger_off_the_data(trained_logo, discrete_dataset):
    model = load_world_model(trained_logo)
    dm = datamodule(discrete_dataset)
    b = batch_of(dm, 512, split="val")
    inside = model.step(b["obs"], b["state"], b["actions"]).uncertainty
    # the same transitions moved k standard deviations off the data in every state and observation feature
    def u_at(k: float) -> torch.Tensor:
        return model.step(b["obs"] + k * model.obs_norm.std, b["state"] + k * model.state_norm.std,
                          b["actions"]).uncertainty

    near, far = u_at(4), u_at(8)
    assert bool((inside > 0).all()) and bool((far > 0).all())
    assert inside.mean() < near.mean() < far.mean()
    assert far.mean() > 3 * inside.mean(), (float(inside.mean()), float(far.mean()))
    assert (far > inside.quantile(0.95)).float().mean() > 0.9


def test_logo_joint_or_local_action_input(discrete_dataset):
    dm = datamodule(discrete_dataset)
    joint, local = build(LogoWorldModel, dm), build(LogoWorldModel, dm, action_input="local")
    b = batch_of(dm, 8)
    inputs = joint.normalise_inputs(b["obs"], b["state"], b["actions"])
    assert joint.pred_encoder.net[0].in_features - local.pred_encoder.net[0].in_features == \
        (dm.n_agents - 1) * dm.action_size
    assert local.predict(inputs).next_obs.shape == joint.predict(inputs).next_obs.shape


def test_logo_uncertainty_can_also_see_the_reward(discrete_dataset):
    dm = datamodule(discrete_dataset)
    with pytest.raises(ValueError, match="aux_reward"):
        build(LogoWorldModel, dm, aux_reward=-1.0)
    assert build(LogoWorldModel, dm).aux_state[-1].out_features == dm.state_dim  # the paper's u: s' only
    model = build(LogoWorldModel, dm, aux_reward=2.0)
    assert model.aux_state[-1].out_features == dm.state_dim + 1
    b = batch_of(dm, 16)
    inputs = model.normalise_inputs(b["obs"], b["state"], b["actions"])
    with_reward = model.predict(inputs).uncertainty
    z, _, _ = model.predictive(inputs)
    aux_reward = model.auxiliary(z, inputs["state"])[:, dm.state_dim]
    model.hparams.aux_reward = 0.0  # same weights, the state part of u alone
    state_only = model.predict(inputs)
    gap = (aux_reward - state_only.reward).square()
    torch.testing.assert_close(with_reward.square(), state_only.uncertainty.square() + 2.0 * gap)
    model.hparams.aux_reward = 2.0
    _, _, parts = model._parts(b)  # the auxiliary loss now covers the reward too
    assert torch.isfinite(parts["aux_state"]) and parts["aux_state"] > 0


def test_logo_reward_weight_scales_the_reward_term_of_the_deductive_nll(discrete_dataset):
    dm = datamodule(discrete_dataset)
    with pytest.raises(ValueError, match="reward_weight"):
        build(LogoWorldModel, dm, reward_weight=-1.0)
    s, b = dm.state_dim, 4
    # by hand, plain NLL (beta 0) with unit std: 0.5 * error^2 per feature; state errors 1, reward error 2
    heads = {"mean": torch.zeros(b, s + 1), "log_std": torch.zeros(b, s + 1), "done_logit": torch.zeros(b),
             "legal_logit": torch.zeros(b, dm.n_agents, dm.action_size)}
    targets = {"state_delta": torch.ones(b, s), "rewards": torch.full((b,), 2.0), "terminals": torch.zeros(b),
               "next_avail": torch.ones(b, dm.n_agents, dm.action_size, dtype=torch.bool)}
    for weight in (1.0, 5.0, 0.0):
        model = build(LogoWorldModel, dm, nll_beta=0.0, reward_weight=weight)
        nll = model._deductive_loss(heads, targets)["nll"]
        torch.testing.assert_close(nll, torch.tensor((0.5 * s + weight * 2.0) / (s + 1)))
    # the coupled pass is weighted too: on a batch, only the reward's share of both NLLs changes
    batch = batch_of(dm, 32)
    torch.manual_seed(0)
    default = build(LogoWorldModel, dm)
    heavy = build(LogoWorldModel, dm, reward_weight=3.0)
    heavy.load_state_dict(default.state_dict())
    with torch.no_grad():
        inputs, targets, parts = default._parts(batch)
        heavy_parts = heavy._parts(batch)[2]
        _, mean, _ = default.predictive(inputs)
        predicted, _ = default.next_obs_from(inputs["obs"], mean)
        reward_nll = []
        for next_obs in (targets["next_obs"], predicted):
            heads = default.deductive(next_obs, inputs)[1]
            reward_nll.append(gaussian_nll(heads["mean"][:, s], heads["log_std"][:, s], targets["rewards"],
                                           beta=default.hparams.nll_beta) / (s + 1))
    torch.testing.assert_close(heavy_parts["deductive_nll"], parts["deductive_nll"] + 2.0 * reward_nll[0])
    torch.testing.assert_close(heavy_parts["coupling"], parts["coupling"] + 2.0 * reward_nll[1])


def test_logo_reward_weight_parses_from_yaml_and_the_command_line(discrete_dataset, tmp_path):
    config = tmp_path / "reward.yaml"
    config.write_text("model:\n  class_path: LogoWorldModel\n  init_args: {reward_weight: 3.0}\n")
    base = ["--config", str(ROOT / "configs/mpe/simple_spread_v3/world_model.yaml"),
            "--data.init_args.path", str(discrete_dataset), "--trainer.logger", "false", "--trainer.callbacks", "[]",
            "--trainer.default_root_dir", str(tmp_path)]
    assert LogoCLI(args=base, run=False).model.hparams.reward_weight == 1.0  # the default: the paper's loss
    assert LogoCLI(args=[*base, "--config", str(config)], run=False).model.hparams.reward_weight == 3.0
    cli = LogoCLI(args=[*base, "--model.init_args.reward_weight", "54"], run=False)
    assert cli.model.hparams.reward_weight == 54.0


def test_direct_model_matches_logo_parameter_count(discrete_dataset):
    dm = datamodule(discrete_dataset)
    for logo_kwargs in ({}, {"hidden_sizes": [64, 64], "latent_dim": 32}):
        direct = build(DirectWorldModel, dm, width=None, match_logo=logo_kwargs)
        target = logo_parameter_count(direct.hparams, logo_kwargs)
        assert abs(sum(p.numel() for p in direct.parameters()) - target) / target < 0.01


def test_ensemble_members_differ_at_initialisation(discrete_dataset):
    dm = datamodule(discrete_dataset)
    model = build(EnsembleWorldModel, dm)
    for layer in model.net.layers:
        w = layer.weight.detach()
        for i in range(len(w)):
            for j in range(i):
                assert not torch.allclose(w[i], w[j])
    out = model.members(model.normalise_inputs(*[batch_of(dm, 4)[k] for k in ("obs", "state", "actions")]))
    assert (out["mean"][0] - out["mean"][1]).abs().max() > 1e-3


def test_ensemble_is_one_vectorised_network_equal_to_separate_members(discrete_dataset):
    dm = datamodule(discrete_dataset)
    model = build(EnsembleWorldModel, dm)
    x = torch.randn(5, model.in_dim)
    together = model.net(x)  # [K, 5, out]
    for k in range(model.hparams.ensemble_size):
        h = x
        for i, layer in enumerate(model.net.layers):
            h = h @ layer.weight[k] + layer.bias[k]
            h = torch.relu(h) if i < len(model.net.layers) - 1 else h
        assert torch.allclose(together[k], h, atol=1e-5)


def test_ensemble_uncertainty_modes_see_disagreement(discrete_dataset):
    dm = datamodule(discrete_dataset)
    b = batch_of(dm, 32)
    model = build(EnsembleWorldModel, dm)
    u = {}
    for mode in ("max_std", "pairwise_diff", "ensemble_std"):
        model.hparams.uncertainty = mode
        u[mode] = model.step(b["obs"], b["state"], b["actions"]).uncertainty
        assert bool((u[mode] > 0).all()), mode
    with torch.no_grad():  # identical members: no disagreement left, aleatoric std unchanged
        for layer in model.net.layers:
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.copy_(layer.bias[:1].expand_as(layer.bias))
    for mode in ("pairwise_diff", "ensemble_std"):
        model.hparams.uncertainty = mode
        assert float(model.step(b["obs"], b["state"], b["actions"]).uncertainty.max()) < 1e-5
    model.hparams.uncertainty = "max_std"
    assert bool((model.step(b["obs"], b["state"], b["actions"]).uncertainty > 0).all())


def test_ensemble_keeps_the_best_members_as_elites(discrete_dataset, tmp_path):
    dm = datamodule(discrete_dataset)
    model = build(EnsembleWorldModel, dm)
    with torch.no_grad():  # sabotage member 0: it must not be an elite after validation
        model.net.layers[-1].bias[0] += 50.0
    trainer = fit(model, dm, tmp_path, max_steps=5)
    assert 0 not in model.elite_idx.tolist() and len(model.elite_idx) == 2
    assert "val/elite_mse" in trainer.callback_metrics


def test_normalisation_and_weights_round_trip_through_a_checkpoint(trained_logo, discrete_dataset):
    model = load_world_model(trained_logo)
    dm = datamodule(discrete_dataset)
    assert torch.allclose(model.obs_norm.mean, dm.statistics["obs_mean"])
    assert torch.allclose(model.state_delta_norm.std, dm.statistics["state_delta_std"])
    assert torch.allclose(model.state_high, dm.statistics["state_max"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    fresh = build(LogoWorldModel, dm)
    fresh.load_state_dict(torch.load(trained_logo, weights_only=False)["state_dict"])
    b = batch_of(dm, 8)
    a, c = model.step(b["obs"], b["state"], b["actions"]), fresh.step(b["obs"], b["state"], b["actions"])
    assert torch.equal(a.next_state, c.next_state) and torch.equal(a.uncertainty, c.uncertainty)


def test_load_world_model_refuses_other_files(tmp_path):
    with pytest.raises(LogoError, match="no such file"):
        load_world_model(tmp_path / "missing.ckpt")
    policy = tmp_path / "policy.ckpt"
    torch.save({"logo_policy_class": "logo.policy.bc:BCPolicy", "state_dict": {}}, policy)
    with pytest.raises(LogoError, match="it is a policy checkpoint"):
        load_world_model(policy)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(LogoError, match="cannot be read"):
        load_world_model(garbage)


def test_open_loop_starts_stay_inside_one_episode(discrete_dataset):
    dm = datamodule(discrete_dataset)
    storage = dm.storage_on(torch.device("cpu"))
    for k in (1, 5, 15):
        starts = open_loop_starts(storage, dm.val_indices, k, limit=10_000)
        assert len(starts) > 0
        ep = storage["episode_id"]
        assert torch.equal(ep[starts], ep[starts + k - 1])
        assert bool(torch.isin(starts, dm.val_indices).all())
    assert len(open_loop_starts(storage, dm.val_indices, 5, limit=7)) == 7


@pytest.mark.parametrize("cls", MODELS)
def test_validation_logs_every_metric(cls, discrete_dataset, tmp_path):
    dm = datamodule(discrete_dataset)
    model = build(cls, dm)
    trainer = fit(model, dm, tmp_path, max_steps=10)
    logged = set(trainer.callback_metrics)
    for name in ("val/loss", "val/mse_obs", "val/mse_state", "val/mse_reward", "val/termination_accuracy",
                 "val/termination_auroc", "val/legal_accuracy", "val/spearman_u_error", "val/open_loop_mse_k1",
                 "val/open_loop_mse_k5", "val/open_loop_mse_k15"):
        assert name in logged, name
        assert torch.isfinite(trainer.callback_metrics[name]), name


def test_open_loop_errors_are_the_logged_ones(discrete_dataset, tmp_path):
    dm = datamodule(discrete_dataset)
    model = build(LogoWorldModel, dm, open_loop_steps=[1, 3, 8], open_loop_starts=40)
    trainer = fit(model, dm, tmp_path, max_steps=10)
    errors = open_loop_errors(model.eval(), dm.storage_on(torch.device("cpu")), dm.val_indices, [1, 3, 8], 40)
    assert list(errors) == [1, 3, 8]
    for k, value in errors.items():
        assert value == pytest.approx(float(trainer.callback_metrics[f"val/open_loop_mse_k{k}"]), rel=1e-6)
    assert open_loop_errors(model, dm.storage_on(torch.device("cpu")), dm.val_indices[:0], [1, 3], 40) == {}


def test_the_diagnostics_callback_is_added_once_and_leaves_other_modules_alone(discrete_dataset, tmp_path):
    from lightning.pytorch import LightningModule

    from logo.callbacks import WorldModelDiagnostics
    from logo.trainer import LogoTrainer

    def diagnostics(trainer):
        return [c for c in trainer.callbacks if isinstance(c, WorldModelDiagnostics)]

    assert len(diagnostics(LogoTrainer(logger=False))) == 1
    mine = WorldModelDiagnostics()
    assert diagnostics(LogoTrainer(logger=False, callbacks=[mine])) == [mine]

    class NotAWorldModel(LightningModule):
        def log_dict(self, *args, **kwargs):
            raise AssertionError("the diagnostics logged for a module that is not a world model")

    trainer = LogoTrainer(logger=False)
    mine.on_validation_epoch_start(trainer, NotAWorldModel())
    mine.on_validation_batch_end(trainer, NotAWorldModel(), None, None, 0)
    mine.on_validation_epoch_end(trainer, NotAWorldModel())


class CountedLogo(LogoWorldModel):
    """LogoWorldModel counting its training-time self.log calls by global step."""

    def log(self, name, value, *args, **kwargs):
        if self.trainer.training and name.startswith("train/"):
            self.logged.setdefault(self.trainer.global_step, set()).add(name)
        super().log(name, value, *args, **kwargs)


def test_training_logs_only_the_steps_the_loggers_receive(discrete_dataset, tmp_path):
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from tests.helpers import logged_metrics

    dm = datamodule(discrete_dataset, steps_per_epoch=11)
    model = CountedLogo(**linked_dims(dm), **SMALL[LogoWorldModel])
    model.logged = {}
    Trainer(max_steps=11, accelerator="cpu", logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=4,
            limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, dm)
    # Lightning writes step metrics after updates 4 and 8 (steps 3 and 7): only those steps call self.log
    assert sorted(model.logged) == [3, 7]
    parts = {f"train/{name}" for name in model._parts(batch_of(dm, 8))[2]}
    assert all(names == parts for names in model.logged.values())
    metrics = logged_metrics(tmp_path / "metrics.csv")
    assert all((name, step) in metrics for name in parts for step in (3, 7))
    assert sorted(step for key, step in metrics if key == "train/loss") == [3, 7]


def test_a_world_model_is_not_taken_for_a_policy(trained_logo):
    from logo.policy.checkpoint import load_policy

    with pytest.raises(LogoError, match="it is a world-model checkpoint"):
        load_policy(trained_logo)


def test_sample_next_draws_from_the_gaussians_only_with_a_generator(discrete_dataset):
    dm = datamodule(discrete_dataset)
    model = build(LogoWorldModel, dm, sample_next=True, clip_to_data=False)
    b = batch_of(dm, 16)
    args = (b["obs"], b["state"], b["actions"])
    mean_a, mean_b = model.step(*args), model.step(*args)
    assert torch.equal(mean_a.next_state, mean_b.next_state)
    one = model.step(*args, generator=torch.Generator().manual_seed(1))
    two = model.step(*args, generator=torch.Generator().manual_seed(2))
    again = model.step(*args, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(one.next_state, two.next_state)
    assert torch.equal(one.next_state, again.next_state)
    assert not torch.allclose(one.next_state, mean_a.next_state)
