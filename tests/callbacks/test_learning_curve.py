"""The learning curve: LearningCurve by hand, and the curve.json a real `logo fit` writes through EnvEvaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from logo.callbacks import EnvEvaluation
from logo.callbacks.learning_curve import LearningCurve
from logo.cli import main
from logo.errors import LogoError
from tests.helpers import logged_metrics


def test_curve_points_average_the_training_metrics_since_the_point_before():
    curve = LearningCurve({"label": "MACQL", "seed": 3})
    curve.observe({"train/q_data": torch.tensor(1.0), "train/td": 4.0, "val/loss": 9.0, "eval/return_mean": 1.0})
    curve.observe({"train/q_data": torch.tensor(2.0), "train/rtg_real": float("nan"), "train/vec": torch.ones(3)})
    first = curve.add(updates=100, epoch=0, evaluation={"return_mean": -40.0, "episodes": 8.0})
    assert first == {"updates": 100, "epoch": 0, "return_mean": -40.0, "train/q_data": 1.5, "train/td": 4.0,
                     "train_logs": 2}  # only scalar, finite train/* metrics; `episodes` is meta, not a metric
    second = curve.add(updates=200, epoch=1, evaluation={"return_mean": -30.0})
    assert second == {"updates": 200, "epoch": 1, "return_mean": -30.0, "train_logs": 0}  # a new window
    assert curve.to_dict() == {"format": 1, "label": "MACQL", "seed": 3, "points": [first, second]}

    curve.observe({"train/q_data": 5.0})
    resumed = LearningCurve()
    resumed.load_state_dict(json.loads(json.dumps(curve.state_dict())))  # through a checkpoint
    assert resumed.points == curve.points and resumed.last_updates == 200
    assert resumed.add(300, 2, {})["train/q_data"] == 5.0  # the open window too


def test_evaluation_schedule_is_one_of_epochs_or_steps():
    assert EnvEvaluation().every_n_epochs == 1 and EnvEvaluation().every_n_steps is None
    assert EnvEvaluation(every_n_steps=100).every_n_epochs is None
    with pytest.raises(LogoError, match="every_n_epochs .* or every_n_steps .*, not both"):
        EnvEvaluation(every_n_epochs=1, every_n_steps=100)
    with pytest.raises(LogoError, match="every_n_steps: expected at least 1, got 0"):
        EnvEvaluation(every_n_steps=0)
    with pytest.raises(LogoError, match="curve_file: expected a file name"):
        EnvEvaluation(curve_file="runs/curve.json")


def _policy_config(tmp: Path, dataset: Path, evaluation: dict, max_steps: int) -> Path:
    """MACQL (real data only) on the small MPE dataset: 10 updates an epoch, logged every 5."""
    config = {
        "seed_everything": 4,
        "trainer": {"max_steps": max_steps, "max_epochs": -1, "accelerator": "cpu", "enable_progress_bar": False,
                    "enable_model_summary": False, "enable_checkpointing": False, "log_every_n_steps": 5,
                    "num_sanity_val_steps": 0,
                    "logger": {"class_path": "LogoCSVLogger", "init_args": {"save_dir": str(tmp), "name": "",
                                                                           "version": "run"}},
                    "callbacks": [{"class_path": "EnvEvaluation",
                                   "init_args": {"episodes": 2, "num_envs": 2, "seed": 7, **evaluation}}]},
        "model": {"class_path": "DiscreteMACQL", "init_args": {"hidden_sizes": [32, 32], "cql_samples": 4}},
        "data": {"class_path": "OfflineMARLDataModule",
                 "init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": 10, "val_fraction": 0.2,
                               "return_gamma": 0.99}},
    }
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_policy_fit_writes_its_curve_every_k_updates(tmp_path, mpe_dataset):
    config = _policy_config(tmp_path, mpe_dataset, {"every_n_steps": 10}, max_steps=30)
    assert main(["fit", "--config", str(config)]) == 0
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert curve["label"] == "DiscreteMACQL" and curve["seed"] == 4 and curve["every_n_steps"] == 10
    assert curve["episodes"] == 2 and curve["eval_seed"] == 7 and curve["dataset"] == str(mpe_dataset)
    points = curve["points"]
    assert [p["updates"] for p in points] == [10, 20, 30]
    for point in points:
        assert {"return_mean", "normalized_score", "train/q_data", "train/rtg_real", "train/td",
                "train/cql"} <= set(point)
        assert point["train_logs"] == 2  # the logged steps 5 and 10 of each window of 10 updates
        assert "win_rate" not in point  # MPE has no win condition
        assert math.isfinite(point["train/q_data"])
        # the critic's value of its own greedy actions next to the discounted return that followed (MPE: < 0)
        assert math.isfinite(point["q_policy"]) and point["rtg_policy"] < 0

    logged = logged_metrics(tmp_path / "run" / "metrics.csv")
    # the loggers get each evaluation once, at the step of its last update (as Lightning writes training metrics)
    assert sorted(step for key, step in logged if key == "eval/return_mean") == [9, 19, 29]
    for point in points:
        assert logged[("eval/return_mean", point["updates"] - 1)] == pytest.approx(point["return_mean"])
        window = [v for (key, step), v in logged.items()
                  if key == "train/q_data" and point["updates"] - 10 <= step < point["updates"]]
        assert point["train/q_data"] == pytest.approx(sum(window) / len(window), rel=1e-5)  # the CSV's own values

    # `logo curves` plots it: score, and q_data against the data's return-to-go (MPE: no win rate)
    figure = tmp_path / "curve.png"
    assert main(["curves", str(tmp_path / "run"), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_epoch_schedule_records_a_curve_too(tmp_path, mpe_dataset):
    config = _policy_config(tmp_path, mpe_dataset, {"every_n_epochs": 2}, max_steps=40)
    assert main(["fit", "--config", str(config)]) == 0
    points = json.loads((tmp_path / "run" / "curve.json").read_text())["points"]
    assert [(p["updates"], p["epoch"]) for p in points] == [(20, 1), (40, 3)]
    assert all(p["train_logs"] == 4 and "train/q_data" in p for p in points)

