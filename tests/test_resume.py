"""Exact resume: a fit killed with SIGKILL and resumed with ``--ckpt_path last`` continues the same curve.

Each stage runs three times in subprocesses on the shipped MPE configs: a run killed right after
step 25 (its last checkpoint is step 20), the resumed run, and an uninterrupted reference. Training
on CPU with one thread is deterministic, so the resumed run's logged metrics must equal the
reference's exactly, step for step, including the policy stage's world-model rollouts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT
from tests.helpers import logged_metrics

MAX_STEPS = 45  # the killed run stops after step 25: checkpoint at 20, resumed run trains 21..45


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _overrides(run_dir: Path, version: str, dataset: Path, stall: Path | None, extra: dict) -> Path:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(run_dir / "checkpoints"), "every_n_train_steps": 10,
                                "every_n_epochs": None, "save_last": True, "save_top_k": -1}}]
    if stall is not None:
        callbacks.append({"class_path": "tests.helpers.Stall", "init_args": {"after_step": 25, "marker": str(stall)}})
    config = {
        "trainer": {"max_steps": MAX_STEPS, "max_epochs": -1, "log_every_n_steps": 1, "enable_progress_bar": False,
                    "num_sanity_val_steps": 0, "callbacks": callbacks,
                    "logger": {"class_path": "LogoCSVLogger",
                               "init_args": {"save_dir": str(run_dir), "name": "", "version": version,
                                             "flush_logs_every_n_steps": 1}}},
        "data": {"init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": 15, "val_fraction": 0.2}},
        **extra,
    }
    path = run_dir / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def _command(config: str, overrides: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "logo", "fit", "--config", config, "--config", str(overrides), *args]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _sigkill_when(command: list[str], ready, what: str) -> None:
    """Start ``command`` and SIGKILL it as soon as ``ready()`` holds (polled every 10 ms)."""
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the command ended before {what}: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} in 300 s")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _kill_resume_and_compare(tmp_path: Path, config: str, dataset: Path, extra: dict) -> tuple[dict, dict]:
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    marker = tmp_path / "stalled"
    _sigkill_when(_command(config, _overrides(killed_dir, "run", dataset, marker, extra)), marker.exists,
                  "the kill point")
    last = killed_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 20  # saved every 10 steps; killed after 25
    _run(_command(config, _overrides(killed_dir, "run", dataset, None, extra), "--ckpt_path", "last"))
    _run(_command(config, _overrides(reference_dir, "reference", dataset, None, extra)))
    resumed = logged_metrics(killed_dir / "run" / "metrics.csv")
    reference = logged_metrics(reference_dir / "reference" / "metrics.csv")
    after = {key: value for key, value in reference.items() if key[1] >= 20}
    # the killed run's own log is kept beside the resumed one (Lightning's CSVLogger would delete it)
    before_kill = logged_metrics(killed_dir / "run" / "metrics.1.csv")
    assert max(step for _, step in before_kill) > 20  # it went past its last checkpoint
    assert before_kill == {key: value for key, value in reference.items() if key in before_kill}
    assert min(step for _, step in resumed) >= 20 and max(step for _, step in resumed) == MAX_STEPS - 1
    assert resumed.keys() == after.keys()
    assert resumed == after  # exactly: same batches, same random numbers, same float operations
    return resumed, checkpoint


def test_world_model_fit_resumes_exactly_after_sigkill(tmp_path, mpe_dataset):
    extra = {"model": {"init_args": {"hidden_sizes": [32, 32], "latent_dim": 16}}}
    resumed, _ = _kill_resume_and_compare(tmp_path, "configs/mpe/simple_spread_v3/world_model.yaml", mpe_dataset,
                                          extra)
    keys = {key for key, _ in resumed}
    assert {"train/loss", "val/loss"} <= keys  # training steps and validation (epoch ends at 30 and 45)


def test_policy_fit_with_rollouts_resumes_exactly_after_sigkill(tmp_path, mpe_dataset):
    wm_dir = tmp_path / "world_model"
    wm_overrides = _overrides(wm_dir, "wm", mpe_dataset, None,
                              {"model": {"init_args": {"hidden_sizes": [32, 32], "latent_dim": 16}}})
    _run(_command("configs/mpe/simple_spread_v3/world_model.yaml", wm_overrides, "--trainer.max_steps", "30"))
    extra = {"model": {"init_args": {"hidden_sizes": [32, 32]}},
             "data": {"init_args": {"path": str(mpe_dataset), "batch_size": 32, "steps_per_epoch": 15,
                                    "val_fraction": 0.2, "world_model": str(wm_dir / "checkpoints" / "last.ckpt"),
                                    "rollout_every": 8, "rollout_batch": 16, "horizon": 3, "buffer_rollouts": 4}}}
    resumed, checkpoint = _kill_resume_and_compare(tmp_path / "policy", "configs/mpe/simple_spread_v3/policy.yaml",
                                                   mpe_dataset, extra)
    keys = {key for key, _ in resumed}
    assert {"train/td", "train/cql", "train/synthetic_share", "synthetic/u_mean"} <= keys
    # rounds ran at steps 0, 8 and 16 before the kill; the buffer came back from the checkpoint
    (state,) = checkpoint["OfflineMARLDataModule"]["per_rank"]
    assert state["synthetic"]["rounds"] == 3 and state["synthetic"]["buffer"]["size"] == 3 * 16 * 3
    assert ("synthetic/u_mean", 24) in resumed  # the first round after the resume matches the reference's


# ---- dataset writers: an interrupted `logo collect` / `logo data import` leaves nothing at the target ----

def _kill_when_writing(command: list[str], target: Path) -> None:
    """SIGKILL ``command`` as soon as its temporary dataset folder exists; check nothing was published."""
    _sigkill_when(command, lambda: bool(list(target.parent.glob(f".{target.name}.tmp-*"))), "a temporary dataset")
    assert not target.exists()


def test_killed_collect_leaves_no_dataset_and_a_rerun_cleans_up(tmp_path):
    pytest.importorskip("mpe2", reason="needs the 'mpe' extra")
    target = tmp_path / "spread.zarr"
    command = [sys.executable, "-m", "logo", "collect", "--env", "mpe", "--scenario", "simple_spread_v3",
               "--behaviour", "random", "--quality", "random", "--out", str(target), "--episodes"]
    _kill_when_writing([*command, "100000"], target)
    _run([*command, "4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spread.zarr"]  # the dead run's folder is gone


def test_killed_import_leaves_no_dataset(tmp_path):
    h5py = pytest.importorskip("h5py", reason="needs the 'hdf5' extra")
    import numpy as np

    # an OMIGA-layout MaMuJoCo file: 20000 episodes of 9 steps, each followed by its delimiter row
    episodes, length, n, obs, act = 20000, 9, 2, 5, 3
    rows = episodes * (length + 1)
    rng = np.random.default_rng(0)
    source = tmp_path / "Hopper-medium.hdf5"
    with h5py.File(source, "w") as f:
        f["o"] = rng.normal(size=(rows, n, obs)).astype(np.float32)
        f["s"] = np.repeat(rng.normal(size=(rows, 1, obs)).astype(np.float32), n, 1)
        f["a"] = rng.uniform(-1, 1, size=(rows, n, act)).astype(np.float32)
        f["r"] = rng.normal(size=(rows, 1)).astype(np.float32)
        d = np.zeros((rows, 1), np.float32)
        d[length::length + 1] = 1.0
        f["d"] = d
    target = tmp_path / "imported.zarr"
    _kill_when_writing([sys.executable, "-m", "logo", "data", "import", "omiga", str(source), "--out", str(target),
                        "--no_progress"], target)
