"""Discrete MACQL: its losses by hand, a real fit, and training on world-model rollouts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from logo.callbacks import RolloutRounds
from logo.data import OfflineMARLDataModule
from logo.dims import linked_dims
from logo.errors import LogoError
from logo.nn import QMixer, VDNMixer
from logo.policy.checkpoint import load_policy
from logo.policy.losses import td_target, weighted_mean
from logo.policy.macql import DiscreteMACQL
from logo.policy.macql_losses import (
    counterfactual_cql_penalty,
    counterfactual_joint_actions,
    greedy_legal,
    joint_cql_penalty,
    local_cql_penalty,
    sample_legal_joint_actions,
)
from logo.synthetic import ModelRollouts, SamplingOptions
from logo.world_model import LogoWorldModel

SMALL = {"hidden_sizes": [64, 64]}


def _trainer(max_steps: int, callbacks: list | None = None, **kwargs) -> Trainer:
    """A plain Lightning Trainer with the RolloutRounds callback that LogoTrainer adds by itself."""
    return Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   callbacks=[RolloutRounds(), *(callbacks or [])], **kwargs)


def _dm(path: Path, **kwargs) -> OfflineMARLDataModule:
    return OfflineMARLDataModule(str(path), **{"batch_size": 64, "steps_per_epoch": 200, "val_fraction": 0.2, **kwargs})


# ---- losses by hand ----------------------------------------------------------------------------

def test_mixers_by_hand_and_qmix_is_monotonic():
    q = torch.tensor([[1.0, 2.0, 3.0]])
    assert VDNMixer()(q, torch.zeros(1, 4)).item() == 6.0
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_dim=4)
    q = torch.randn(16, 3, requires_grad=True)
    mixer(q, torch.randn(16, 4)).sum().backward()
    assert (q.grad >= 0).all()  # dQ_tot / dQ_i >= 0: per-agent greedy actions are jointly greedy


def test_td_target_bootstraps_through_truncation_only():
    target = td_target(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([2.0, 2.0]), gamma=0.5)
    torch.testing.assert_close(target, torch.tensor([2.0, 1.0]))


def test_greedy_and_cql_terms_respect_legal_actions():
    q = torch.tensor([[[5.0, 1.0, 2.0], [0.0, math.log(2.0), 100.0]]])  # [B=1, N=2, A=3]
    avail = torch.tensor([[[False, True, True], [True, True, False]]])
    assert greedy_legal(q, avail).tolist() == [[2, 1]]
    # agent 0: log(e^1 + e^2) - Q(a=1); agent 1: log(1 + 2) - Q(a=0); the illegal 5 and 100 never count
    actions = torch.tensor([[1, 0]])
    expected = ((math.log(math.e + math.e ** 2) - 1.0) + (math.log(3.0) - 0.0)) / 2
    assert local_cql_penalty(q, actions, avail).item() == pytest.approx(expected, rel=1e-6)


def test_counterfactual_cql_penalty_by_hand():
    q = torch.tensor([[[5.0, 1.0, 2.0], [0.0, math.log(2.0), 100.0]]])  # [B=1, N=2, A=3]
    avail = torch.tensor([[[False, True, True], [True, True, False]]])
    actions = torch.tensor([[1, 0]])
    q_chosen = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [[1, 0]]
    deviations = counterfactual_joint_actions(q, q_chosen)  # [1, 2, 3, 2]
    # agent 0 deviating to action 2 keeps agent 1's data value; agent 1 deviating to action 1 keeps agent 0's
    assert deviations[0, 0, 2].tolist() == [2.0, 0.0]
    assert deviations[0, 1, 1].tolist() == pytest.approx([1.0, math.log(2.0)])
    # with a sum (VDN) the term is the per-agent (local) one: the other agents' values cancel
    q_tot = deviations.sum(-1)
    local = local_cql_penalty(q, actions, avail).item()
    assert counterfactual_cql_penalty(q_tot, q_chosen.sum(-1), avail).item() == pytest.approx(local, rel=1e-6)
    # a mixer that doubles Q_tot doubles every gap: the term grows where the data action is not the best (agent 0)
    doubled = counterfactual_cql_penalty(2 * q_tot, 2 * q_chosen.sum(-1), avail).item()
    expected = ((math.log(math.exp(2.0) + math.exp(4.0)) - 2.0) + (math.log(1 + 4.0) - 0.0)) / 2
    assert doubled == pytest.approx(expected, rel=1e-6)
    assert counterfactual_cql_penalty(q_tot, q_chosen.sum(-1), avail).item() >= 0.0


def test_joint_cql_penalty_by_hand():
    # K=2 sampled joint actions with Q_tot 0 and log 3, dataset action 0.5:
    # log((e^0 + e^log3 + e^0.5) / 3) - 0.5
    samples = torch.tensor([[0.0, math.log(3.0)]])
    expected = math.log((1.0 + 3.0 + math.exp(0.5)) / 3.0) - 0.5
    assert joint_cql_penalty(samples, torch.tensor([0.5])).item() == pytest.approx(expected, rel=1e-6)
    assert joint_cql_penalty(torch.full((1, 7), 2.0), torch.tensor([2.0])).item() == pytest.approx(0.0, abs=1e-6)
    # bounded below: inflating Q_tot(data) cannot push the term under -log(K + 1)
    far = joint_cql_penalty(torch.zeros(1, 7), torch.tensor([50.0])).item()
    assert far == pytest.approx(-math.log(8.0), rel=1e-6)


def test_cql_temperature_by_hand():
    # T * log sum exp(Q / T): at T = 0.5 the local term of Q = [1, 2] with data action 0 is 0.5 * log(e^2 + e^4) - 1
    q, actions = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[0]])
    expected = 0.5 * math.log(math.exp(2.0) + math.exp(4.0)) - 1.0
    assert local_cql_penalty(q, actions, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    assert local_cql_penalty(q, actions, temperature=1.0).item() == pytest.approx(
        local_cql_penalty(q, actions).item())  # 1 is CQL(H)
    # towards 0 it is max - Q(data): 1 here, and 0 where the data action is the greedy one
    assert local_cql_penalty(q, actions, temperature=1e-3).item() == pytest.approx(1.0, abs=1e-4)
    assert local_cql_penalty(q, torch.tensor([[1]]), temperature=1e-3).item() == pytest.approx(0.0, abs=1e-4)
    # illegal actions stay out at any temperature
    avail = torch.tensor([[[True, False]]])
    assert local_cql_penalty(q, actions, avail, temperature=1e-3).item() == pytest.approx(0.0, abs=1e-4)
    # joint: T * (log mean exp(Q / T)) - Q(data), the data action in the set
    samples, data = torch.tensor([[0.0, 1.0]]), torch.tensor([0.5])
    expected = 0.25 * math.log((1.0 + math.exp(4.0) + math.exp(2.0)) / 3.0) - 0.5
    assert joint_cql_penalty(samples, data, temperature=0.25).item() == pytest.approx(expected, rel=1e-6)
    deviations = torch.tensor([[[1.0, 2.0]]])  # one agent's two deviations, Q_tot(data) = 1
    assert counterfactual_cql_penalty(deviations, torch.tensor([1.0]), temperature=0.5).item() == pytest.approx(
        0.5 * math.log(math.exp(2.0) + math.exp(4.0)) - 1.0, rel=1e-6)


def test_cql_temperature_sets_the_push_up_on_the_data_action():
    """The term's gradient on Q(data) is -(1 - softmax_T(Q)[data]): at T = 1 and small action gaps it pushes a data
    action that is already the greedy one up by almost the full weight (the level bias that bootstrapping compounds);
    at a small T it leaves such an action alone."""
    pushes = {}
    for temperature in (1.0, 0.01):
        q = torch.tensor([[[0.10, 0.05, 0.0, 0.02]]], requires_grad=True)  # data action 0 is greedy, gaps << 1
        local_cql_penalty(q, torch.tensor([[0]]), temperature=temperature).sum().backward()
        pushes[temperature] = -q.grad[0, 0, 0].item()
        expected = 1.0 - torch.softmax(q.detach()[0, 0] / temperature, -1)[0].item()
        assert pushes[temperature] == pytest.approx(expected, abs=1e-6)
    assert pushes[1.0] > 0.7 and pushes[0.01] < 0.01, pushes


def test_cql_temperature_is_a_yaml_switch_and_must_be_positive(discrete_dataset, tmp_path):
    from logo.cli import LogoCLI

    config = tmp_path / "macql.yaml"
    config.write_text(f"""
trainer: {{max_steps: 3, accelerator: cpu, logger: false, enable_checkpointing: false, enable_progress_bar: false,
          limit_val_batches: 0, default_root_dir: {tmp_path}}}
model:
  class_path: DiscreteMACQL
  init_args: {{hidden_sizes: [16], cql_mode: local, mixer: vdn, cql_temperature: 0.1, cql_synthetic_weight: 0.1}}
data:
  class_path: OfflineMARLDataModule
  init_args: {{path: {discrete_dataset}, batch_size: 8}}
""")
    cli = LogoCLI(args=["--config", str(config)], run=False)
    assert cli.model.hparams.cql_temperature == 0.1 and cli.model.hparams.cql_synthetic_weight == 0.1
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 3 and all(torch.isfinite(p).all() for p in cli.model.parameters())
    dm = _dm(discrete_dataset)
    with pytest.raises(LogoError, match="cql_temperature"):
        DiscreteMACQL(**linked_dims(dm), **SMALL, cql_temperature=0.0)


def test_sampled_joint_actions_are_legal_and_uniform():
    avail = torch.tensor([[[True, False, True, True], [False, False, True, False]]])
    samples = sample_legal_joint_actions(avail, (1, 2, 4), 30_000, torch.Generator().manual_seed(0))
    assert samples.shape == (1, 30_000, 2)
    assert avail[0, 0, samples[0, :, 0]].all() and (samples[0, :, 1] == 2).all()
    share = torch.bincount(samples[0, :, 0], minlength=4).float() / 30_000
    torch.testing.assert_close(share, torch.tensor([1 / 3, 0.0, 1 / 3, 1 / 3]), atol=0.015, rtol=0)


def test_sampled_joint_actions_by_hand_and_deterministic():
    avail = torch.tensor([[[False, True, False, True, True], [True, True, True, True, True]],
                          [[False, False, False, False, False], [False, False, True, False, False]]])
    samples = sample_legal_joint_actions(avail, (2, 2, 5), 7, torch.Generator().manual_seed(3))
    assert samples.shape == (2, 7, 2)
    u = torch.rand((2, 2, 7), generator=torch.Generator().manual_seed(3))  # the same draws: [B, N, K]
    legal = torch.tensor([1, 3, 4])  # row 0, agent 0: the floor(3u)-th of its legal actions
    torch.testing.assert_close(samples[0, :, 0], legal[(3 * u[0, 0]).long()])
    torch.testing.assert_close(samples[0, :, 1], (5 * u[0, 1]).long())  # every action legal: floor(5u)
    assert (samples[1, :, 0] == 0).all()  # no legal action: action 0, as the greedy one
    assert (samples[1, :, 1] == 2).all()
    again = sample_legal_joint_actions(avail, (2, 2, 5), 7, torch.Generator().manual_seed(3))
    other = sample_legal_joint_actions(avail, (2, 2, 5), 7, torch.Generator().manual_seed(4))
    assert torch.equal(samples, again) and not torch.equal(samples, other)
    unmasked = sample_legal_joint_actions(None, (1, 1, 5), 50_000, torch.Generator().manual_seed(0))
    share = torch.bincount(unmasked.flatten(), minlength=5).float() / 50_000
    torch.testing.assert_close(share, torch.full((5,), 0.2), atol=0.01, rtol=0)


def test_sampled_joint_actions_are_uniform_over_many_masks():
    g = torch.Generator().manual_seed(1)
    avail = torch.rand((64, 3, 6), generator=g) < 0.5
    avail[..., 5] |= ~avail.any(-1)  # at least one legal action per agent
    samples = sample_legal_joint_actions(avail, (64, 3, 6), 6_000, g)  # [64, 6000, 3]
    counts = torch.nn.functional.one_hot(samples, 6).sum(1).float()  # [64, 3, 6]
    assert (counts[~avail] == 0).all()  # never an illegal action
    expected = avail.float() / avail.sum(-1, keepdim=True) * 6_000  # uniform over each agent's legal ones
    torch.testing.assert_close(counts, expected, atol=6_000 * 0.035, rtol=0)


def test_module_target_masks_the_next_action(discrete_dataset):
    dm = _dm(discrete_dataset)
    dm.setup("fit")
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, mixer="vdn", double_q=False)
    batch = dm.on_after_batch_transfer(dm.val_indices[:32], 0)
    with torch.no_grad():  # make the illegal action the most valuable one everywhere
        model.q_target.net[-1].bias.fill_(0.0)
        model.q_target.net[-1].weight.fill_(0.0)
        model.q_target.net[-1].bias[:] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    next_avail = batch["next_avail_actions"].clone()
    next_avail[..., 4] = False
    batch["next_avail_actions"] = next_avail
    q = model.q_values(batch["obs"])
    q_data = q.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1).sum(-1)
    best_legal = torch.where(next_avail[..., 3], 3.0, torch.where(next_avail[..., 2], 2.0, 1.0)).sum(-1)
    target = batch["rewards"] + 0.99 * (1 - batch["terminals"]) * best_legal
    torch.testing.assert_close(model.losses(batch)["td"], (q_data - target).square().detach())


# ---- training ----------------------------------------------------------------------------------

def _gap(model: DiscreteMACQL, batch: dict) -> float:
    """Mean Q of the dataset action minus mean Q of the other legal actions."""
    q = model.q_values(batch["obs"]).detach()
    data = torch.nn.functional.one_hot(batch["actions"], q.shape[-1]).bool()
    others = batch["avail_actions"] & ~data
    return float(q[data].mean() - q[others].mean())


def test_fit_learns_acts_legally_and_reloads(discrete_dataset, tmp_path):
    seed_everything(0, verbose=False)
    dm = _dm(discrete_dataset, steps_per_epoch=300)
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, cql_alpha=0.0, lr=1e-3)
    dm.setup("fit")
    model.obs_norm.set_stats(dm.statistics["obs_mean"], dm.statistics["obs_std"])
    model.state_norm.set_stats(dm.statistics["state_mean"], dm.statistics["state_std"])
    batch = dm.on_after_batch_transfer(dm.val_indices, 0)
    before = float(model.losses(batch)["td"].mean().detach())
    trainer = _trainer(300)
    trainer.fit(model, dm)
    assert trainer.global_step == 300
    after = float(model.losses(batch)["td"].mean())
    assert after < 0.5 * before, (before, after)
    actions = model.act(batch["obs"], batch["avail_actions"])
    assert batch["avail_actions"].gather(-1, actions.unsqueeze(-1)).all()
    explore = DiscreteMACQL.rollout_act(model, batch["obs"], batch["avail_actions"],
                                        generator=torch.Generator().manual_seed(0))
    assert batch["avail_actions"].gather(-1, explore.unsqueeze(-1)).all()
    assert 0.02 < (explore != actions).float().mean() < 0.2  # epsilon 0.1, minus random picks of the greedy action
    trainer.save_checkpoint(tmp_path / "macql.ckpt")
    loaded = load_policy(tmp_path / "macql.ckpt")
    assert isinstance(loaded, DiscreteMACQL)
    assert torch.equal(loaded.act(batch["obs"], batch["avail_actions"]), actions)


@pytest.mark.parametrize("cql_mode", ["joint", "local", "counterfactual"])
def test_cql_term_makes_dataset_actions_preferred(discrete_dataset, cql_mode):
    gaps, penalties = {}, {}
    for alpha in (0.0, 5.0):
        seed_everything(0, verbose=False)
        dm = _dm(discrete_dataset)
        model = DiscreteMACQL(**linked_dims(dm), **SMALL, cql_alpha=alpha, cql_mode=cql_mode, lr=1e-3)
        _trainer(200).fit(model, dm)
        batch = dm.on_after_batch_transfer(dm.val_indices, 0)
        gaps[alpha] = _gap(model, batch)
        penalties[alpha] = float(model.losses(batch)["cql"].mean())
    assert penalties[5.0] < penalties[0.0] - 0.1, penalties
    assert gaps[5.0] > gaps[0.0] + (0.3 if cql_mode == "local" else 0.05), gaps  # mixed terms act through the mixer too


def test_refuses_continuous_data(continuous_dataset):
    dm = _dm(continuous_dataset)
    with pytest.raises(LogoError, match="DiscreteMACQL needs discrete actions"):
        DiscreteMACQL(**linked_dims(dm))


# ---- the policy on world-model rollouts --------------------------------------------------------

class RecordBatches(Callback):
    def __init__(self):
        self.synthetic, self.uncertainty, self.sizes = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.synthetic.append(int(batch["synthetic"].sum()))
        self.sizes.append(len(batch["rewards"]))
        if "uncertainty" in batch:
            self.uncertainty.append(batch["uncertainty"][batch["synthetic"]].clone())


@pytest.fixture(scope="module")
def world_model_ckpt(discrete_dataset, tmp_path_factory) -> Path:
    """Stage one: a small LOGO world model fitted a few steps, checkpointed by the Trainer."""
    seed_everything(0, verbose=False)
    dm = _dm(discrete_dataset, batch_size=128)
    model = LogoWorldModel(**linked_dims(dm), hidden_sizes=[64, 64], latent_dim=32, lr=3e-3)
    trainer = _trainer(150)
    trainer.fit(model, dm)
    path = tmp_path_factory.mktemp("wm") / "logo.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize("sampling", ["weighted", "uniform", "penalty"])
def test_two_stage_synthetic_rows_enter_batches(discrete_dataset, world_model_ckpt, sampling):
    rollouts = ModelRollouts(str(world_model_ckpt), rollout_every=20, rollout_batch=32, horizon=5, buffer_rollouts=2,
                             sampling=SamplingOptions(sampling))
    dm = _dm(discrete_dataset, real_ratio=0.75, synthetic=rollouts)
    model = DiscreteMACQL(**linked_dims(dm), **SMALL)
    record = RecordBatches()
    trainer = _trainer(60, callbacks=[record])
    trainer.fit(model, dm)
    assert record.sizes == [64] * 60 and record.synthetic == [16] * 60  # real:synthetic exactly 48:16
    buf = dm.synthetic.buffer
    assert dm.synthetic.rounds == 3 and len(buf) <= 32 * 5 * 2
    drawn = torch.cat(record.uncertainty)
    assert (drawn > 0).all()
    if sampling == "weighted":  # draws lean to the low-u end of the buffer
        assert drawn.mean() < buf.uncertainty().mean()
    # the world model stays out of the policy
    assert not any(k.startswith(("model", "world")) for k in model.state_dict())
    assert "world_model" not in model.hparams
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in dm.synthetic.model.parameters()}


class CountedMACQL(DiscreteMACQL):
    """DiscreteMACQL counting its training-time self.log calls by global step."""

    def log(self, name, value, *args, **kwargs):
        if self.trainer.training:
            self.logged.setdefault(self.trainer.global_step, set()).add(name)
        super().log(name, value, *args, **kwargs)


def test_training_logs_only_the_steps_the_loggers_receive(discrete_dataset, world_model_ckpt, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from tests.helpers import logged_metrics

    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(world_model_ckpt), rollout_every=20, rollout_batch=16,
                                                       horizon=3))
    model = CountedMACQL(**linked_dims(dm), **SMALL)
    model.logged = {}
    trainer = Trainer(max_steps=11, accelerator="cpu", logger=CSVLogger(tmp_path, name="", version=""),
                      log_every_n_steps=4, limit_val_batches=0, enable_checkpointing=False, callbacks=[RolloutRounds()],
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, dm)
    # Lightning writes step metrics after updates 4 and 8 (steps 3 and 7): only those steps call self.log
    assert sorted(model.logged) == [3, 7]
    split = {f"train/{n}{s}" for n in ("td", "cql", "q_data", "td_bias") for s in ("", "_real", "_synthetic")}
    extra = {"train/loss", "train/synthetic_share", "train/td_synthetic_share"}
    assert all(names == split | extra for names in model.logged.values())
    metrics = logged_metrics(tmp_path / "metrics.csv")
    shares = [value for (key, _), value in metrics.items() if key == "train/td_synthetic_share"]
    assert len(shares) == 2 and all(0.0 < share < 1.0 for share in shares), shares
    assert sorted(step for key, step in metrics if key == "train/loss") == [3, 7]
    assert all((name, step) in metrics for name in split for step in (3, 7))


@pytest.mark.parametrize("mode", ["real_only", "push_down", "balanced", "skip", "push_down_weight"])
def test_training_steps_that_do_not_log_never_wait_for_the_device(discrete_dataset, world_model_ckpt, mode):
    from tests.helpers import HostSyncs

    synthetic = None
    if mode != "real_only":
        synthetic = ModelRollouts(str(world_model_ckpt), rollout_every=20, rollout_batch=16, horizon=3)
    dm = _dm(discrete_dataset, synthetic=synthetic)
    weight = 0.1 if mode == "push_down_weight" else 1.0  # cql_synthetic_weight on a fit with synthetic rows
    mode = "push_down" if synthetic is None or mode == "push_down_weight" else mode
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, cql_synthetic=mode, cql_synthetic_weight=weight)
    syncs = HostSyncs()
    trainer = Trainer(max_steps=8, accelerator="cpu", logger=False, log_every_n_steps=4, limit_val_batches=0,
                      enable_checkpointing=False, callbacks=[RolloutRounds(), syncs], enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(model, dm)
    ours = {step: [op for op in ops if " at logo/" in op] for step, ops in syncs.steps.items()}
    # steps 3 and 7 log (they read values and split rows by a boolean mask); the others ask nothing of the device.
    # Adam's step counters (torch.optim, CPU tensors even on a GPU) are not logo's and not a device sync.
    assert {step for step, ops in ours.items() if ops} == {3, 7}, ours
    if synthetic is not None:  # the batches did carry synthetic rows
        assert trainer.callback_metrics["train/synthetic_share"] > 0


def test_policy_loss_gives_the_world_model_no_gradient(discrete_dataset, world_model_ckpt):
    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(world_model_ckpt), rollout_batch=16, horizon=3))
    model = DiscreteMACQL(**linked_dims(dm), **SMALL)
    _trainer(2).fit(model, dm)  # one rollout round with the policy
    world = dm.synthetic.model
    world.requires_grad_(True)  # even if someone unfroze it, the policy loss could not reach it
    batch = dm.on_after_batch_transfer(dm.train_indices[:64], 0)  # trainer detached: real rows only
    synthetic = dm.synthetic.sample(64, torch.device("cpu"))
    batch = {k: torch.cat([batch[k], synthetic[k]]) for k in batch if k in synthetic}
    parts = model.losses(batch)
    (parts["td"].mean() + parts["cql"].mean()).backward()
    assert all(p.grad is None for p in world.parameters())
    assert any(p.grad is not None for p in model.parameters())


def test_world_model_options_fail_clearly(discrete_dataset, tmp_path):
    with pytest.raises(LogoError, match="data.synthetic.horizon: expected a positive integer, got 0"):
        ModelRollouts("x.ckpt", horizon=0)
    with pytest.raises(LogoError, match="data.synthetic.stop_uncertainty: expected a positive multiple"):
        ModelRollouts("x.ckpt", stop_uncertainty=0.0)
    with pytest.raises(LogoError, match="data.synthetic.sampling.mode"):
        SamplingOptions("softmax")
    with pytest.raises(LogoError, match=r"data.synthetic.sampling.priority_low \(2.0\) must not exceed "
                                        r"data.synthetic.sampling.priority_high"):
        SamplingOptions(priority_low=2.0)
    with pytest.raises(LogoError, match="data.synthetic.sampling.temperature: expected a positive value, got 0"):
        SamplingOptions(temperature=0)
    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(tmp_path / "missing.ckpt")))
    with pytest.raises(LogoError, match="missing.ckpt: no such file"):
        dm.setup("fit")
    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(tmp_path / "missing.ckpt")), real_ratio=1.0)
    dm.setup("fit")  # real data only: the world model is not needed
    assert dm.synthetic is None


def test_rollouts_without_the_rounds_callback_fail_clearly(discrete_dataset, world_model_ckpt):
    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(world_model_ckpt), rollout_batch=16, horizon=3))
    trainer = Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with pytest.raises(LogoError, match="RolloutRounds"):
        trainer.fit(DiscreteMACQL(**linked_dims(dm), **SMALL), dm)


def test_cql_term_on_synthetic_rows():
    penalty, q_data = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 0.5, 0.5, 0.5])
    batch = {"weights": torch.ones(4), "synthetic": torch.tensor([False, False, True, True])}
    values, weights = DiscreteMACQL.conservative_term(penalty, q_data, batch, "push_down")
    torch.testing.assert_close(values, torch.tensor([1.0, 2.0, 3.5, 4.5]))  # no -Q(data) on synthetic rows
    values, weights = DiscreteMACQL.conservative_term(penalty, q_data, batch, "skip")
    torch.testing.assert_close(weights, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    values, weights = DiscreteMACQL.conservative_term(penalty, q_data, batch, "full")
    torch.testing.assert_close(values, penalty)


@pytest.mark.parametrize("mode", ["push_down", "balanced", "skip", "full"])
def test_cql_term_on_a_real_only_batch_is_the_real_rows_term(mode):
    """No shortcut on ``synthetic.any()`` (a host sync per update): the synthetic modes still leave real rows alone."""
    penalty, q_data = torch.tensor([1.0, -2.5, 3.25]), torch.tensor([0.7, -0.3, 1.9])
    batch = {"weights": torch.tensor([1.0, 0.5, 2.0]), "synthetic": torch.zeros(3, dtype=torch.bool)}
    values, weights = DiscreteMACQL.conservative_term(penalty, q_data, batch, mode)
    assert torch.equal(values, penalty) and torch.equal(weights, batch["weights"])


@pytest.mark.parametrize(("mode", "level_force"), [("push_down", 2.0 / 5.0), ("balanced", 0.0), ("full", 0.0)])
def test_cql_term_level_force_on_synthetic_rows(mode, level_force):
    """d(CQL term)/d(a constant shift of every Q): push_down pushes the level down; balanced (COMBO) does not."""
    shift = torch.zeros((), requires_grad=True)
    lse, q = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, -0.5, 1.0, 0.0])
    batch = {"weights": torch.tensor([1.0, 2.0, 0.5, 1.5]), "synthetic": torch.tensor([False, False, True, True])}
    values, weights = DiscreteMACQL.conservative_term((lse + shift) - (q + shift), q + shift, batch, mode)
    weighted_mean(values, weights).backward()
    # push_down: synthetic rows keep lse, whose shift derivative is 1: weight 2.0 of 5.0 in the mean
    assert shift.grad.item() == pytest.approx(level_force, abs=1e-6)


@pytest.mark.parametrize(("mode", "level_force"), [("push_down", 0.2 / 3.2), ("balanced", 0.0), ("skip", 0.0)])
def test_cql_synthetic_weight_scales_the_model_rows_in_the_term(mode, level_force):
    """cql_synthetic_weight w: synthetic rows count w each in the term's mean; push_down's level force shrinks with
    it (weights 1, 2 real and 0.5, 1.5 synthetic: at w = 0.1 the synthetic mass is 0.2 of 3.2), 0 is skip."""
    shift = torch.zeros((), requires_grad=True)
    lse, q = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, -0.5, 1.0, 0.0])
    batch = {"weights": torch.tensor([1.0, 2.0, 0.5, 1.5]), "synthetic": torch.tensor([False, False, True, True])}
    values, weights = DiscreteMACQL.conservative_term((lse + shift) - (q + shift), q + shift, batch, mode, 0.1)
    weighted_mean(values, weights).backward()
    assert shift.grad.item() == pytest.approx(level_force, abs=1e-6)
    if mode == "push_down":
        torch.testing.assert_close(weights, torch.tensor([1.0, 2.0, 0.05, 0.15]))
        # by hand: (1 * 0.5 + 2 * 2.5 + 0.05 * 3 + 0.15 * 4) / 3.2
        assert weighted_mean(values, weights).item() == pytest.approx((0.5 + 5.0 + 0.15 + 0.6) / 3.2)
    zero, _ = DiscreteMACQL.conservative_term(lse - q, q, batch, mode, 0.0)
    skip_values, skip_weights = DiscreteMACQL.conservative_term(lse - q, q, batch, "skip")
    assert weighted_mean(zero, _).item() == pytest.approx(weighted_mean(skip_values, skip_weights).item())
    with pytest.raises(LogoError, match="cql_synthetic_weight"):
        DiscreteMACQL(3, 4, 5, "discrete", 2, cql_synthetic_weight=-1.0)


@pytest.mark.parametrize("world_model", ["DirectWorldModel", "EnsembleWorldModel"])
def test_baseline_world_models_feed_rollouts_with_their_own_uncertainty(discrete_dataset, world_model, tmp_path):
    from logo import world_model as models

    seed_everything(0, verbose=False)
    dm = _dm(discrete_dataset, batch_size=128)
    small = {"DirectWorldModel": {"width": 64}, "EnsembleWorldModel": {"ensemble_size": 3, "elites": 2,
                                                                       "hidden_sizes": [32, 32]}}[world_model]
    trainer = _trainer(60)
    trainer.fit(getattr(models, world_model)(**linked_dims(dm), **small), dm)
    trainer.save_checkpoint(tmp_path / "wm.ckpt")
    dm = _dm(discrete_dataset, synthetic=ModelRollouts(str(tmp_path / "wm.ckpt"), rollout_batch=32, horizon=4))
    record = RecordBatches()
    _trainer(5, callbacks=[record]).fit(DiscreteMACQL(**linked_dims(dm), **SMALL), dm)
    assert type(dm.synthetic.model).__name__ == world_model
    assert record.synthetic == [32] * 5 and bool((torch.cat(record.uncertainty) > 0).all())


def test_q_of_the_data_is_logged_next_to_the_return_to_go(discrete_dataset, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from tests.helpers import logged_metrics

    dm = _dm(discrete_dataset, return_gamma=0.99)
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, reward_scale=0.1)
    Trainer(max_steps=4, accelerator="cpu", logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2,
            limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, dm)
    metrics = logged_metrics(tmp_path / "metrics.csv")
    rtg = 0.1 * dm.dataset.returns_to_go(0.99)[dm.train_indices.numpy()]
    logged = [value for (key, _), value in metrics.items() if key == "train/rtg_real"]
    assert len(logged) == 2 and all(rtg.min() <= v <= rtg.max() for v in logged)
    steps = sorted(step for key, step in metrics if key == "train/rtg_real")
    assert steps == sorted(step for key, step in metrics if key == "train/q_data")  # logged side by side


def test_layer_norm_switch_builds_a_normalised_agent_network(discrete_dataset):
    dm = _dm(discrete_dataset)
    plain = DiscreteMACQL(**linked_dims(dm), **SMALL)
    normed = DiscreteMACQL(**linked_dims(dm), **SMALL, layer_norm=True)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in normed.q_net.modules()) == 2  # one per hidden layer
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in normed.q_target.modules()) == 2
    _trainer(3).fit(normed, dm)
    assert all(torch.isfinite(p).all() for p in normed.parameters())


def test_vdn_mixer_fits_and_its_parameterless_target_is_left_alone(discrete_dataset):
    dm = _dm(discrete_dataset)
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, mixer="vdn", cql_mode="local")
    before = [p.clone() for p in model.q_target.parameters()]
    _trainer(3).fit(model, dm)
    assert not list(model.mixer_target.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.q_target.parameters()))  # Polyak moved the rest


def test_weight_decay_switch_uses_adamw_and_decays_the_weights(discrete_dataset):
    dm = _dm(discrete_dataset)
    assert type(DiscreteMACQL(**linked_dims(dm), **SMALL).configure_optimizers()) is torch.optim.Adam
    model = DiscreteMACQL(**linked_dims(dm), **SMALL, weight_decay=0.5, lr=0.1)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0.5
    weight = model.q_net.parameters().__next__()
    before = weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradients: only the decoupled decay acts, w <- w * (1 - lr * wd)
    torch.testing.assert_close(weight.detach(), before * (1 - 0.1 * 0.5))


@pytest.mark.slow  # torch.compile takes 20-70 s on 2 CPU cores
def test_compiled_losses_match_eager_and_train(discrete_dataset):
    dm = _dm(discrete_dataset)
    dm.setup("fit")
    eager = DiscreteMACQL(**linked_dims(dm), **SMALL)
    compiled = DiscreteMACQL(**linked_dims(dm), **SMALL, compile_losses=True)
    compiled.load_state_dict(eager.state_dict())
    batch = dm.on_after_batch_transfer(dm.train_indices[:64], 0)
    rng = torch.get_rng_state()
    out = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        torch.set_rng_state(rng)  # the same sampled CQL joint actions: compiled code draws from eager's generator
        parts = model.training_losses(batch)
        (parts["td"].mean() + parts["cql"].mean()).backward()
        out[name] = parts, [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for key in ("td", "cql", "q_data", "q_data_attached"):
        torch.testing.assert_close(out["compiled"][0][key], out["eager"][0][key], rtol=1e-5, atol=1e-5)
    assert not out["compiled"][0]["q_data"].requires_grad and out["compiled"][0]["q_data_attached"].requires_grad
    assert len(out["compiled"][1]) == len(out["eager"][1]) > 0
    for g_compiled, g_eager in zip(out["compiled"][1], out["eager"][1]):
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-5)
    assert compiled._compiled_losses is not None and eager._compiled_losses is None
    _trainer(5).fit(compiled, dm)  # the switch inside a real fit (validation stays eager)
    assert all(torch.isfinite(p).all() for p in compiled.parameters())
