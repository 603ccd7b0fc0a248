"""`logo fit` of every world model from the shipped configs, on synthetic data and on data of each env family."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from logo.cli import main
from logo.world_model import load_world_model
from tests.conftest import ROOT, collect_small

STACKS = {"LogoWorldModel": [], "DirectWorldModel": ["--config", str(ROOT / "configs/world_model/direct.yaml")],
          "EnsembleWorldModel": ["--config", str(ROOT / "configs/world_model/ensemble.yaml")]}
FAMILIES = {
    "mpe": ("simple_spread_v3", "configs/mpe/simple_spread_v3/world_model.yaml", "mpe2",
            {"behaviour": "scripted", "epsilon": 0.5, "episodes": 12}),
    "smax": ("3m", "configs/smax/3m/world_model.yaml", "jaxmarl",
             {"behaviour": "scripted", "epsilon": 0.25, "episodes": 12}),
    "mamujoco": ("HalfCheetah-2x3", "configs/mamujoco/HalfCheetah-2x3/world_model.yaml", "gymnasium_robotics",
                 {"behaviour": "random", "episodes": 6, "env_options": {"max_episode_steps": 40}}),
}


@pytest.mark.parametrize("model", STACKS)
def test_fast_dev_run_of_each_world_model_config(model, discrete_dataset, tmp_path):
    code = main(["fit", "--config", str(ROOT / "configs/smax/3m/world_model.yaml"), *STACKS[model],
                 "--data.init_args.path", str(discrete_dataset), "--trainer.fast_dev_run", "2",
                 "--trainer.default_root_dir", str(tmp_path)])
    assert code == 0


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dataset(request, tmp_path_factory) -> tuple[str, Path]:
    scenario, _, package, options = FAMILIES[request.param]
    return request.param, collect_small(request.param, scenario, package, options, tmp_path_factory)


@pytest.mark.parametrize("model", STACKS)
def test_each_world_model_trains_on_each_env_family(model, family_dataset, tmp_path):
    family, data = family_dataset
    config = ROOT / FAMILIES[family][1]
    args = ["fit", "--config", str(config), *STACKS[model], "--data.init_args.path", str(data),
            "--data.init_args.batch_size", "32", "--data.init_args.val_fraction", "0.2",
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    if model == "LogoWorldModel":  # one real fit per family: two epochs, validation, checkpoints
        assert main([*args, "--trainer.max_epochs", "2", "--data.init_args.steps_per_epoch", "5"]) == 0
        checkpoints = sorted(tmp_path.rglob("*.ckpt"))
        assert any(c.name == "last.ckpt" for c in checkpoints)
        assert load_world_model(checkpoints[0]).hparams.n_agents > 1
        rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
        logged = {k for row in rows for k, v in row.items() if v}
        assert {"val/loss", "val/mse_state", "val/spearman_u_error", "val/open_loop_mse_k1"} <= logged
    else:
        assert main([*args, "--trainer.fast_dev_run", "2"]) == 0
