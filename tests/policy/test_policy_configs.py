"""`logo fit` of the shipped policy configs on each environment family: world model, then LOGO+MACQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from logo.cli import main
from tests.conftest import ROOT, collect_small

FAMILIES = {  # family: (scenario, config folder, package, collect options)
    "mpe": ("simple_spread_v3", "configs/mpe/simple_spread_v3", "mpe2", {"behaviour": "scripted", "epsilon": 0.5,
                                                                        "episodes": 8}),
    "smax": ("3m", "configs/smax/3m", "jaxmarl", {"behaviour": "scripted", "epsilon": 0.25, "episodes": 8}),
    "mamujoco": ("HalfCheetah-2x3", "configs/mamujoco/HalfCheetah-2x3", "gymnasium_robotics",
                 {"behaviour": "random", "episodes": 4, "env_options": {"max_episode_steps": 40}}),
}
EVALUATION = [{"class_path": "EnvEvaluation", "init_args": {"episodes": 2, "num_envs": 2, "seed": 0}}]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dataset(request, tmp_path_factory) -> tuple[str, Path]:
    scenario, _, package, options = FAMILIES[request.param]
    return request.param, collect_small(request.param, scenario, package, options, tmp_path_factory)


def test_policy_config_fits_on_world_model_rollouts_and_evaluates(family_dataset, tmp_path):
    family, data = family_dataset
    folder = ROOT / FAMILIES[family][1]
    common = ["--data.init_args.path", str(data), "--data.init_args.batch_size", "32",
              "--data.init_args.val_fraction", "0.25", "--trainer.enable_progress_bar", "false"]
    assert main(["fit", "--config", str(folder / "world_model.yaml"), *common, "--trainer.max_epochs", "1",
                 "--data.init_args.steps_per_epoch", "5", "--trainer.logger.init_args.save_dir", str(tmp_path / "wm"),
                 "--model.init_args.hidden_sizes", "[32, 32]", "--model.init_args.latent_dim", "16"]) == 0
    checkpoint = tmp_path / "wm" / "logo" / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file()
    assert main(["fit", "--config", str(folder / "policy.yaml"), *common, "--trainer.max_epochs", "1",
                 "--data.init_args.steps_per_epoch", "8", "--trainer.log_every_n_steps", "2",
                 "--trainer.logger.init_args.save_dir", str(tmp_path / "policy"),
                 "--trainer.callbacks", json.dumps(EVALUATION), "--model.init_args.hidden_sizes", "[32, 32]",
                 "--data.init_args.synthetic.init_args.world_model", str(checkpoint),
                 "--data.init_args.synthetic.init_args.rollout_batch", "16",
                 "--data.init_args.synthetic.init_args.horizon", "3"]) == 0
    rows = list(csv.DictReader(next((tmp_path / "policy").rglob("metrics.csv")).open()))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"eval/return_mean", "synthetic/u_mean", "synthetic/ess", "train/td_synthetic", "train/cql",
            "val/loss"} <= logged
    if family == "smax":
        assert "eval/win_rate" in logged
