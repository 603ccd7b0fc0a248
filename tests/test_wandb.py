"""Weights & Biases tracking: offline-first mode, and what short offline fits of both stages record.

The offline run's record is read from its ``run-*.wandb`` file (LevelDB log format of W&B
``Record`` protobufs: ``files/`` holds no config or history in offline mode).
"""

from __future__ import annotations

import csv
import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from logo import __version__
from logo.cli import main
from logo.loggers import LogoWandbLogger, log_calibration, log_histogram
from logo.metrics import calibration_bins
from logo.provenance import code_version
from tests.conftest import ROOT

wandb = pytest.importorskip("wandb")
from google.protobuf.message import DecodeError  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

WANDB_CONFIG = str(ROOT / "configs/logger/wandb.yaml")
SMALL_WORLD_MODEL = ["--model.init_args.hidden_sizes", "[32]", "--model.init_args.latent_dim", "16"]


@dataclass
class OfflineRun:
    """What an offline run's ``.wandb`` file holds."""

    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per wandb.log, top-level keys
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    exit_code: int | None = None

    @property
    def keys(self) -> set[str]:
        return {k for row in self.history for k in row}


def wandb_records(path: Path):
    """The ``Record`` protobufs of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then LevelDB
    log blocks of 32 KiB whose chunks (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) hold records."""
    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    pos, pieces = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block trailer or zero padding
            pos += left
            continue
        if pos + 7 + length > len(data):  # a chunk still being written: stop at the last complete record
            return
        pieces += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def read_offline_run(save_dir: Path, timeout: float = 30.0) -> OfflineRun:
    """The one offline run under ``save_dir``, read once its exit record is on disk (wandb-core writes the
    file asynchronously: ``finish()`` can return before the last records are flushed)."""
    runs = sorted((save_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    path, deadline = next(runs[0].glob("run-*.wandb")), time.monotonic() + timeout
    while True:
        try:
            records = list(wandb_records(path))
        except DecodeError:  # read while wandb-core was writing a record: read again
            if time.monotonic() > deadline:
                raise
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    run = OfflineRun()
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                run.config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                name = item.nested_key[0] if item.nested_key else item.key
                if len(item.nested_key) > 1:
                    row.setdefault(name, {})[item.nested_key[-1]] = json.loads(item.value_json)
                else:
                    row[name] = json.loads(item.value_json)
            run.history.append(row)
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def csv_keys(folder: Path) -> set[str]:
    with next(folder.rglob("metrics.csv")).open() as f:
        rows = list(csv.DictReader(f))
    return {k for row in rows for k, v in row.items() if v}


@pytest.fixture(scope="module")
def offline_env():
    """W&B offline and quiet, with no key; every run finished afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_DIR", "WANDB_NAME"):
            mp.delenv(name, raising=False)
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_CONSOLE", "off")
        yield
        if wandb.run is not None:
            wandb.finish()


@pytest.fixture(scope="module")
def world_model_fit(offline_env, discrete_dataset, tmp_path_factory) -> Path:
    """Stage one from the shipped SMAX 3m config with W&B stacked last, checkpoint artifacts on."""
    out = tmp_path_factory.mktemp("wandb_world_model")
    assert main(["fit", "--config", str(ROOT / "configs/smax/3m/world_model.yaml"),
                 "--trainer.logger.init_args.save_dir", str(out / "csv"),  # before the stack: the CSV logger's
                 "--config", WANDB_CONFIG,
                 "--trainer.logger.init_args.save_dir", str(out),  # after it: the W&B logger's
                 "--trainer.logger.init_args.log_model", "true",
                 "--data.init_args.path", str(discrete_dataset), "--data.init_args.batch_size", "32",
                 "--data.init_args.steps_per_epoch", "4", "--trainer.max_epochs", "2",
                 "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
                 *SMALL_WORLD_MODEL]) == 0
    return out


def test_world_model_run_records_config_dataset_code_and_every_metric(world_model_fit):
    run = read_offline_run(world_model_fit)
    assert run.exit_code == 0  # finished at the end of fit, not at interpreter exit
    config = run.config["config"]
    assert config["model"]["class_path"] == "logo.world_model.LogoWorldModel"
    assert config["model"]["init_args"]["latent_dim"] == 16 and config["trainer"]["max_epochs"] == 2
    assert config["data"]["init_args"]["steps_per_epoch"] == 4
    dataset = run.config["dataset"]
    assert dataset["env_family"] == "synthetic" and dataset["n_agents"] == 3 and dataset["n_episodes"] == 60
    assert dataset["format"] == "logo-marl-dataset" and dataset["path"].endswith("discrete.zarr")
    assert run.config["code"]["logo"] == __version__ and "git_commit" in run.config["code"]
    assert run.config["hidden_sizes"] == [32]  # Lightning's own hparams record is still there
    # everything the CSV logger got, plus the drawings
    logged = csv_keys(world_model_fit / "csv")
    parts = {"loss", "predictive_nll", "deductive_nll", "coupling", "latent", "aux_state", "legal"}  # loss by parts
    assert {f"train/{part}" for part in parts} | {"val/loss", "val/mse_state", "val/spearman_u_error"} <= logged
    assert logged - {"step"} <= run.keys
    histograms = [row["val/u_histogram"] for row in run.history if "val/u_histogram" in row]
    assert len(histograms) == 2 and histograms[0]["_type"] == "histogram"  # one per validation epoch
    tables = [row["val/u_calibration_table"] for row in run.history if "val/u_calibration_table" in row]
    assert len(tables) == 2 and tables[0]["ncols"] == 2 and 1 <= tables[0]["nrows"] <= 10
    # log_model=true: the best and last checkpoints as model artifacts, recorded offline
    assert any(kind == "model" for _, kind in run.artifacts)


def test_stacking_wandb_keeps_the_checkpoints_where_the_policy_configs_read_them(world_model_fit):
    assert (world_model_fit / "csv" / "logo" / "checkpoints" / "best.ckpt").is_file()
    assert "runs/smax/3m/world_model/logo/checkpoints/best.ckpt" in (ROOT / "configs/smax/3m/policy.yaml").read_text()
    assert not list(world_model_fit.glob("logo/*/checkpoints"))  # nothing under the W&B logger's folders


def test_policy_run_records_rollout_statistics(world_model_fit, discrete_dataset, tmp_path):
    checkpoint = world_model_fit / "csv" / "logo" / "checkpoints" / "best.ckpt"
    assert main(["fit", "--config", str(ROOT / "configs/smax/3m/policy.yaml"),
                 "--trainer.logger.init_args.save_dir", str(tmp_path / "csv"), "--trainer.callbacks", "[]",
                 "--config", WANDB_CONFIG, "--trainer.logger.init_args.save_dir", str(tmp_path),
                 "--data.init_args.path", str(discrete_dataset),
                 "--data.init_args.synthetic.init_args.world_model", str(checkpoint),
                 "--data.init_args.batch_size", "32", "--data.init_args.steps_per_epoch", "6",
                 "--data.init_args.synthetic.init_args.rollout_every", "3",
                 "--data.init_args.synthetic.init_args.rollout_batch", "16",
                 "--data.init_args.synthetic.init_args.horizon", "3", "--trainer.max_epochs", "1",
                 "--trainer.log_every_n_steps", "1",
                 "--trainer.enable_progress_bar", "false", "--model.init_args.hidden_sizes", "[32]"]) == 0
    run = read_offline_run(tmp_path)
    assert run.exit_code == 0
    assert run.config["config"]["model"]["class_path"] == "logo.policy.DiscreteMACQL"
    assert run.config["config"]["data"]["init_args"]["synthetic"]["init_args"]["world_model"] == str(checkpoint)
    logged = csv_keys(tmp_path / "csv")
    assert {"train/synthetic_share", "train/td_synthetic", "synthetic/ess", "synthetic/u_mean"} <= logged
    assert logged - {"step"} <= run.keys
    ess = [row for row in run.history if "synthetic/ess" in row]
    assert len(ess) == 2 and all(row["trainer/global_step"] in (0, 3) for row in ess)  # a round every 3 steps
    histograms = [row for row in run.history if "synthetic/u_histogram" in row]
    assert [row["trainer/global_step"] for row in histograms] == [row["trainer/global_step"] for row in ess]
    assert not run.artifacts or all(kind != "model" for _, kind in run.artifacts)  # log_model is off by default


def test_offline_unless_a_key_is_set(monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert LogoWandbLogger().mode == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert LogoWandbLogger().mode == "online"  # `wandb login` writes this entry
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert LogoWandbLogger().mode == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")  # an explicit mode wins over the key
    assert LogoWandbLogger().mode == "offline"
    assert LogoWandbLogger(offline=False).mode == "online" and LogoWandbLogger(mode="disabled").mode == "disabled"
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert LogoWandbLogger().mode == "online"
    assert LogoWandbLogger(offline=True, log_model=True).mode == "offline"  # Lightning's offline flag refuses this


def test_logger_defaults_follow_wandb_environment(monkeypatch):
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    logger = LogoWandbLogger()
    assert (logger.name, logger.save_dir) == ("logo", "runs/wandb")
    monkeypatch.setenv("WANDB_PROJECT", "other")
    monkeypatch.setenv("WANDB_DIR", "/tmp/elsewhere")
    logger = LogoWandbLogger()
    assert (logger.name, logger.save_dir) == ("other", "/tmp/elsewhere")
    assert LogoWandbLogger(project="mine", save_dir="here").name == "mine"


def test_code_version_never_fails(monkeypatch):
    version = code_version()
    assert version["logo"] == __version__
    assert version["git_commit"] is None or len(version["git_commit"]) == 40
    monkeypatch.setenv("PATH", "")  # no git at all
    assert code_version() == {"logo": __version__, "git_commit": None, "git_dirty": None}


def test_calibration_bins_by_hand():
    u = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, float("nan")])
    error = torch.tensor([9.0, 1.0, 5.0, 3.0, 7.0, 1.0])
    u_bins, error_bins = calibration_bins(u, error, bins=2)  # sorted: [.1 .3 .5] [.7 .9]
    torch.testing.assert_close(u_bins, torch.tensor([0.3, 0.8]))
    torch.testing.assert_close(error_bins, torch.tensor([3.0, 8.0]))
    assert len(calibration_bins(u, error, bins=50)[0]) == 5  # no more bins than samples
    assert len(calibration_bins(torch.empty(0), torch.empty(0))[0]) == 0


class FakeTensorBoard:
    def __init__(self):
        self.calls = []

    def add_histogram(self, name, values, step):
        self.calls.append(("histogram", name, step))

    def add_figure(self, name, figure, step):
        self.calls.append(("figure", name, step))


def test_tensorboard_gets_histograms_and_figures():
    TensorBoardLogger = type("TensorBoardLogger", (), {})  # noqa: N806  (dispatch is by class name)
    logger = TensorBoardLogger()
    logger.experiment = FakeTensorBoard()
    log_histogram([logger], "val/u_histogram", torch.rand(50), 3)
    pytest.importorskip("matplotlib")
    log_calibration([logger], "val/u_calibration", torch.tensor([0.1, 0.2]), torch.tensor([1.0, 2.0]), 3)
    assert logger.experiment.calls == [("histogram", "val/u_histogram", 3), ("figure", "val/u_calibration", 3)]
