"""BCPolicy trained through `logo fit`, checkpointed and reloaded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from logo.cli import LogoCLI, main
from logo.data import OfflineMARLDataModule
from logo.errors import LogoError
from logo.policy import BCPolicy
from tests.conftest import ROOT

CONFIG = str(ROOT / "configs/synthetic/bc.yaml")


def _fit(dataset: Path, root: Path, *extra: str) -> None:
    code = main(["fit", "--config", CONFIG, "--data.init_args.path", str(dataset),
                 "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
                 "--trainer.enable_progress_bar", "false", *extra])
    assert code == 0


def _train_losses(root: Path) -> list[float]:
    with open(next(root.rglob("metrics.csv"))) as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


@pytest.mark.parametrize("dataset", ["discrete_dataset", "continuous_dataset"])
def test_fast_dev_run(dataset, request, tmp_path):
    _fit(request.getfixturevalue(dataset), tmp_path, "--trainer.fast_dev_run", "true")


@pytest.mark.parametrize("dataset", ["discrete_dataset", "continuous_dataset"])
def test_loss_goes_down_over_real_steps(dataset, request, tmp_path):
    _fit(request.getfixturevalue(dataset), tmp_path, "--trainer.max_epochs", "2",
         "--data.init_args.steps_per_epoch", "150", "--trainer.log_every_n_steps", "10")
    losses = _train_losses(tmp_path)
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"


def test_checkpoint_carries_statistics_and_reloads_to_act(discrete_dataset, tmp_path):
    _fit(discrete_dataset, tmp_path, "--trainer.max_epochs", "1", "--data.init_args.steps_per_epoch", "300")
    ckpt = next(tmp_path.rglob("last.ckpt"))
    dm = OfflineMARLDataModule(str(discrete_dataset))
    dm.setup("fit")
    policy = BCPolicy.load_from_checkpoint(ckpt)
    torch.testing.assert_close(policy.obs_norm.mean, dm.statistics["obs_mean"])
    torch.testing.assert_close(policy.obs_norm.std, dm.statistics["obs_std"])
    raw = torch.load(ckpt, weights_only=False)
    assert "OfflineMARLDataModule" in raw and "statistics" in raw["OfflineMARLDataModule"]
    batch = dm.on_after_batch_transfer(dm.val_indices, 0)
    actions = policy.act(batch["obs"], batch["avail_actions"])
    assert actions.shape == (len(dm.val_indices), 3)
    assert batch["avail_actions"].gather(-1, actions.unsqueeze(-1)).all()  # only legal actions
    # held-out agreement with the behaviour policy beats the same network untrained, by a margin
    untrained = BCPolicy(**policy.hparams)
    untrained.obs_norm.load_state_dict(policy.obs_norm.state_dict())
    baseline = untrained.act(batch["obs"], batch["avail_actions"])
    accuracy = (actions == batch["actions"]).float().mean().item()
    assert accuracy > (baseline == batch["actions"]).float().mean().item() + 0.15


def test_model_refuses_a_dataset_of_other_dims(discrete_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset))
    model = BCPolicy(n_agents=4, obs_dim=dm.obs_dim, state_dim=dm.state_dim, action_kind="discrete", action_size=5)
    trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(LogoError, match="n_agents: model 4, dataset 3"):
        trainer.fit(model, dm)


def test_checkpoint_of_the_old_format_without_state_norm_still_loads(tmp_path):
    """BC checkpoints written before BCPolicy was an OfflinePolicy lack ``state_norm.*``: they load, with it at
    its defaults."""
    from lightning import __version__ as lightning_version

    from logo.policy.checkpoint import load_policy

    torch.manual_seed(0)
    policy = BCPolicy(3, 4, 5, "continuous", 2, hidden_sizes=[8])
    policy.obs_norm.set_stats(torch.randn(3, 4), torch.rand(3, 4) + 0.5)
    policy.action_low.copy_(torch.tensor([-2.0, 0.0]))
    policy.action_high.copy_(torch.tensor([2.0, 3.0]))
    old = {k: v for k, v in policy.state_dict().items() if not k.startswith("state_norm.")}
    assert set(old) == {"action_low", "action_high", "obs_norm.mean", "obs_norm.std",
                        *(f"net.{k}" for k in policy.net.state_dict())}  # the keys of the old BCPolicy
    path = tmp_path / "old_bc.ckpt"
    torch.save({"state_dict": old, "hyper_parameters": dict(policy.hparams),
                "pytorch-lightning_version": lightning_version, "logo_policy_class": "logo.policy.bc:BCPolicy"}, path)
    obs = torch.randn(6, 3, 4)
    for loaded in (BCPolicy.load_from_checkpoint(path), load_policy(path)):
        for key, value in old.items():
            torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
        torch.testing.assert_close(loaded.state_norm.mean, torch.zeros(5), rtol=0, atol=0)
        torch.testing.assert_close(loaded.state_norm.std, torch.ones(5), rtol=0, atol=0)
        torch.testing.assert_close(loaded.act(obs), policy.act(obs), rtol=0, atol=0)


def test_validate_test_and_predict_from_a_checkpoint(discrete_dataset, tmp_path, capsys):
    _fit(discrete_dataset, tmp_path, "--trainer.max_epochs", "1", "--data.init_args.steps_per_epoch", "20")
    ckpt = str(next(tmp_path.rglob("last.ckpt")))
    for command in ("validate", "test"):
        _run(command, discrete_dataset, tmp_path / command, "--ckpt_path", ckpt)
        out = capsys.readouterr().out
        assert f"{command if command == 'test' else 'val'}/loss" in out
    # predict: the CLI builds the same objects; the trainer returns the per-batch greedy actions
    cli = LogoCLI(run=False, args=["--config", CONFIG, "--data.init_args.path", str(discrete_dataset),
                                   "--trainer.default_root_dir", str(tmp_path / "predict"),
                                   "--trainer.logger", "false", "--trainer.callbacks", "[]"])
    predictions = cli.trainer.predict(cli.model, cli.datamodule, ckpt_path=ckpt)
    actions = torch.cat(predictions)
    assert actions.shape == (len(cli.datamodule.val_indices), 3) and actions.dtype == torch.int64


def _run(command: str, dataset: Path, root: Path, *extra: str) -> None:
    code = main([command, "--config", CONFIG, "--data.init_args.path", str(dataset),
                 "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
                 "--trainer.enable_progress_bar", "false", *extra])
    assert code == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_gpu_gathers_batches_on_the_device(discrete_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=64, steps_per_epoch=20)
    model = BCPolicy(dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size, hidden_sizes=[32])
    devices = []
    step = model.training_step
    model.training_step = lambda batch, batch_idx: (devices.append(batch["obs"].device), step(batch, batch_idx))[1]
    Trainer(accelerator="gpu", devices=1, max_steps=20, logger=False, enable_checkpointing=False,
            enable_progress_bar=False).fit(model, dm)
    assert len(devices) == 20 and all(d.type == "cuda" for d in devices)
    assert all(t.device.type == "cuda" for t in dm.storage_on(devices[0]).values())
