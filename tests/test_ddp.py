"""Both stages under DDP: two CPU processes (gloo), launched by Lightning from ``logo fit`` itself.

Checks what DDP must give: gradients averaged (identical weights on both ranks at the end), each
rank with its own batches, rollouts and synthetic buffer, evaluation played once and logged once,
one set of checkpoints, and checkpoints that carry both ranks' sampler and buffer states.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT
from tests.helpers import logged_metrics

DDP = ["--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2"]


def _fit(config: str, run_dir: Path, dataset: Path, extra: dict, callbacks: list[dict], *args: str,
         max_epochs: int = 2) -> None:
    overrides = {
        "trainer": {"max_epochs": max_epochs, "log_every_n_steps": 1, "enable_progress_bar": False,
                    "num_sanity_val_steps": 0,
                    "callbacks": [*callbacks,
                                  {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(run_dir / "checkpoints"), "save_last": True,
                                                 "every_n_epochs": 1, "monitor": None,
                                                 "filename": "{epoch}-{step}", "save_top_k": -1}},
                                  {"class_path": "tests.helpers.RankProbe", "init_args": {"out_dir": str(run_dir)}}],
                    "logger": {"class_path": "LogoCSVLogger",
                               "init_args": {"save_dir": str(run_dir), "name": "", "version": "ddp"}}},
        "data": {"init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": 12, "val_fraction": 0.2}},
        **extra,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    command = [sys.executable, "-m", "logo", "fit", "--config", config, "--config", str(run_dir / "overrides.yaml"),
               *DDP, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _probes(run_dir: Path) -> tuple[dict, dict]:
    first, second = (json.loads((run_dir / f"rank{r}.json").read_text()) for r in (0, 1))
    assert first["world_size"] == second["world_size"] == 2
    assert first["params"] == second["params"]  # DDP averaged the gradients: the ranks stayed identical
    assert first["sampler"] != second["sampler"]  # ... while each drew its own batches
    assert first["trained_batches"] == second["trained_batches"] == 24
    return first, second


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "ddp" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _logged_once(rows: list[dict[str, str]], key: str) -> list[int]:
    steps = [int(row["step"]) for row in rows if row.get(key, "") != ""]
    assert steps and len(steps) == len(set(steps)), f"{key} logged more than once per step: {steps}"
    return steps


@pytest.fixture(scope="module")
def world_model_run(mpe_dataset, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp_world_model")
    _fit("configs/mpe/simple_spread_v3/world_model.yaml", run_dir, mpe_dataset,
         {"model": {"init_args": {"hidden_sizes": [32, 32], "latent_dim": 16}}}, [])
    return run_dir


def test_world_model_stage_under_ddp(world_model_run):
    _probes(world_model_run)
    rows = _rows(world_model_run)
    assert _logged_once(rows, "val/loss") == [11, 23]  # one validation per epoch, written by rank 0 only
    assert len(_logged_once(rows, "train/loss")) == 24
    assert sorted(p.name for p in (world_model_run / "checkpoints").iterdir()) == \
        ["epoch=0-step=12.ckpt", "epoch=1-step=24.ckpt", "last.ckpt"]


EVALUATION = {"class_path": "EnvEvaluation", "init_args": {"episodes": 2, "num_envs": 2, "every_n_epochs": 1}}


def _policy_extra(dataset: Path, world_model_run: Path) -> dict:
    return {"model": {"init_args": {"hidden_sizes": [32, 32]}},
            "data": {"init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": 12, "val_fraction": 0.2,
                                   "world_model": str(world_model_run / "checkpoints/last.ckpt"),
                                   "rollout_every": 8, "rollout_batch": 16, "horizon": 3, "buffer_rollouts": 4}}}


@pytest.fixture(scope="module")
def policy_run(world_model_run, mpe_dataset, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp_policy")
    _fit("configs/mpe/simple_spread_v3/policy.yaml", run_dir, mpe_dataset, _policy_extra(mpe_dataset, world_model_run),
         [EVALUATION])
    return run_dir


def test_policy_stage_under_ddp_rolls_out_per_rank_and_evaluates_once(policy_run):
    first, second = _probes(policy_run)
    assert first["rounds"] == second["rounds"] == 3  # steps 0, 8, 16
    assert first["buffer_size"] == second["buffer_size"] == 3 * 16 * 3
    assert first["buffer"] != second["buffer"]  # each rank rolled out from its own starts with its own seed
    rows = _rows(policy_run)
    assert _logged_once(rows, "eval/return_mean") == [11, 23]  # played by rank 0, logged once per epoch
    assert len(_logged_once(rows, "synthetic/u_mean")) == 3  # rank 0's rounds
    curve = json.loads((policy_run / "ddp" / "curve.json").read_text())  # the learning curve, written by rank 0
    assert [(p["updates"], p["epoch"]) for p in curve["points"]] == [(12, 0), (24, 1)]
    assert all(p["train_logs"] == 12 and "train/synthetic_share" in p for p in curve["points"])
    checkpoint = torch.load(policy_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ranks = checkpoint["OfflineMARLDataModule"]["per_rank"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["sampler_rng"], ranks[1]["sampler_rng"])
    assert [r["synthetic"]["buffer"]["size"] for r in ranks] == [144, 144]
    assert len(checkpoint["callbacks"]["RandomStates"]["per_rank"]) == 2


def test_policy_stage_under_ddp_resumes_each_rank_exactly(policy_run, world_model_run, mpe_dataset, tmp_path):
    """One epoch, then --ckpt_path last to two: every rank ends where the uninterrupted two-epoch run ended."""
    extra = _policy_extra(mpe_dataset, world_model_run)
    _fit("configs/mpe/simple_spread_v3/policy.yaml", tmp_path, mpe_dataset, extra, [EVALUATION], max_epochs=1)
    _fit("configs/mpe/simple_spread_v3/policy.yaml", tmp_path, mpe_dataset, extra, [EVALUATION],
         "--ckpt_path", "last")
    for rank in (0, 1):
        resumed, uninterrupted = (json.loads((d / f"rank{rank}.json").read_text()) for d in (tmp_path, policy_run))
        assert resumed == uninterrupted  # weights, this rank's buffer, sampler position and round count
    resumed_rows = logged_metrics(tmp_path / "ddp" / "metrics.csv")
    reference = logged_metrics(policy_run / "ddp" / "metrics.csv")
    assert resumed_rows and resumed_rows == {key: reference[key] for key in resumed_rows}
    # the learning curve continues too: the resumed run's file ends as the uninterrupted run's (timings aside)
    resumed_curve, full_curve = ([{k: v for k, v in p.items() if k != "eval_seconds"} for p in
                                  json.loads((d / "ddp" / "curve.json").read_text())["points"]]
                                 for d in (tmp_path, policy_run))
    assert len(full_curve) == 2 and resumed_curve == full_curve


def test_torchrun_launch_the_multi_node_path(discrete_dataset, tmp_path):
    """torchrun sets the rendezvous environment that multi-node jobs use; Lightning picks it up unchanged."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "logo", "fit", "--config", "configs/synthetic/bc.yaml", "--data.init_args.path",
               str(discrete_dataset), "--trainer.max_epochs", "1", "--data.init_args.steps_per_epoch", "10",
               "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
               "--trainer.enable_progress_bar", "false", *DDP]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout and "All distributed processes" in \
        result.stderr + result.stdout
    assert sorted(p.name for p in (tmp_path / "version_0" / "checkpoints").iterdir()) == \
        ["epoch=0-step=10.ckpt", "last.ckpt"]
