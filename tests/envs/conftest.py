"""Fixtures for environment tests: a small real MaMuJoCo dataset and a BC policy trained on it by logo fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def hopper_random(tmp_path_factory) -> Path:
    """30 random Hopper-3x1 episodes recorded by logo collect (read-only)."""
    pytest.importorskip("gymnasium_robotics", reason="needs the 'mamujoco' extra")
    from logo.collect import collect

    out = tmp_path_factory.mktemp("collect") / "hopper_random.zarr"
    collect(env="mamujoco", scenario="Hopper-3x1", behaviour="random", quality="random", out=str(out),
            episodes=30, num_envs=3, progress=False)
    return out


def write_bc_config(tmp: Path, dataset: Path, max_steps: int = 20, callbacks: list | None = None) -> Path:
    """A tiny BC fit config on ``dataset`` writing checkpoints and CSV logs under ``tmp``."""
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": max_steps, "accelerator": "cpu", "enable_progress_bar": False,
                    "enable_model_summary": False, "val_check_interval": max_steps, "log_every_n_steps": 1,
                    "logger": {"class_path": "CSVLogger", "init_args": {"save_dir": str(tmp / "logs")}},
                    "callbacks": [{"class_path": "ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp / "ckpt"), "save_last": True}},
                                  *(callbacks or [])]},
        "model": {"class_path": "BCPolicy", "init_args": {"hidden_sizes": [32, 32]}},
        "data": {"class_path": "OfflineMARLDataModule",
                 "init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": max_steps}},
    }
    path = tmp / "bc.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def hopper_bc_checkpoint(tmp_path_factory, hopper_random) -> Path:
    """A BCPolicy checkpoint trained for 20 steps on ``hopper_random`` through ``logo fit``."""
    from logo.cli import main

    tmp = tmp_path_factory.mktemp("bc")
    assert main(["fit", "--config", str(write_bc_config(tmp, hopper_random))]) == 0
    return tmp / "ckpt" / "last.ckpt"
