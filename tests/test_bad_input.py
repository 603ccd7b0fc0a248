"""The bad-input catalogue (docs/bad_input.md): one test per row, each through the real command.

Every case runs ``logo ...`` end to end (``logo.cli.main`` in-process, two of them as a real
``python -m logo`` process) and checks what the user sees: exit code 2, no traceback, one short
message that names the thing at fault and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from logo.cli import main
from logo.data.pointmass import generate_synthetic_dataset
from tests.conftest import ROOT

MAX_LINES = 15  # jsonargparse's one-line usage, its tip and a nested error fit; a traceback wall does not

BC = ["--config", str(ROOT / "configs/synthetic/bc.yaml"), "--model.init_args.hidden_sizes", "[8]",
      "--data.init_args.steps_per_epoch", "2", "--trainer.max_steps", "2", "--trainer.logger", "false",
      "--trainer.enable_progress_bar", "false"]
WORLD_MODEL = ["--config", str(ROOT / "configs/smax/3m/world_model.yaml"), "--model.init_args.hidden_sizes", "[8]",
               "--model.init_args.latent_dim", "4", "--data.init_args.steps_per_epoch", "1",
               "--trainer.max_steps", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def run_logo(args: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``logo <args>`` (jsonargparse exits; logo's own errors return 2)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *names: str) -> str:
    """Exit 2, no traceback, a message of at most MAX_LINES lines containing every one of ``names``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("usage:", "error:"))), None)
    assert start is not None, err
    message = "\n".join(lines[start:])
    assert len(lines) - start <= MAX_LINES, message
    assert sum(line.startswith("error:") for line in lines) == 1, message  # one message, not a cascade
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    return message


def rollouts(world_model: Path | str, **options) -> list[str]:
    """The CLI arguments of a ModelRollouts synthetic source with ``options``."""
    source = {"class_path": "ModelRollouts", "init_args": {"world_model": str(world_model), **options}}
    return ["--data.init_args.synthetic", json.dumps(source)]


def fit(data: Path, root: Path, *extra: str, capsys) -> tuple[int, str]:
    return run_logo(["fit", *BC, "--data.init_args.path", data, "--trainer.default_root_dir", root, *extra], capsys)


# ---- fixtures: tiny datasets and checkpoints written by logo itself -----------------------------------


@pytest.fixture(scope="module")
def four_agents(tmp_path_factory) -> Path:
    """A synthetic dataset of another scenario (4 agents instead of 3; read-only)."""
    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "four.zarr", episodes=10, n_agents=4, seed=3)


@pytest.fixture(scope="module")
def policy_ckpt(discrete_dataset, tmp_path_factory) -> Path:
    """A BC checkpoint (2 updates) on the 3-agent discrete dataset, written by ``logo fit``."""
    root = tmp_path_factory.mktemp("bc")
    assert main(["fit", *BC, "--data.init_args.path", str(discrete_dataset), "--trainer.default_root_dir",
                 str(root)]) == 0
    return root / "checkpoints" / "last.ckpt"


def fit_world_model(data: Path, root: Path) -> Path:
    """A LOGO world-model checkpoint (1 update) on ``data``, written by ``logo fit``."""
    assert main(["fit", *WORLD_MODEL, "--data.init_args.path", str(data), "--trainer.default_root_dir",
                 str(root)]) == 0
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def world_model_ckpt(discrete_dataset, tmp_path_factory) -> Path:
    """A world model of the 3-agent discrete dataset (the one ``policy_ckpt`` was trained on)."""
    return fit_world_model(discrete_dataset, tmp_path_factory.mktemp("wm"))


@pytest.fixture(scope="module")
def other_world_model(four_agents, tmp_path_factory) -> Path:
    """A world model of the 4-agent dataset."""
    return fit_world_model(four_agents, tmp_path_factory.mktemp("wm4"))


def corrupted(source: Path, tmp_path: Path, corrupt) -> Path:
    """A copy of ``source`` under tmp_path, changed by ``corrupt(group)`` (the fixtures stay read-only)."""
    path = tmp_path / "bad.zarr"
    shutil.copytree(source, path)
    corrupt(zarr.open_group(str(path), mode="r+"))
    return path


def rewrite(group: zarr.Group, name: str, data: np.ndarray) -> None:
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, overwrite=True)
    if data.size:
        arr[...] = data


def no_episodes(group: zarr.Group) -> None:
    episodes = group["episode_starts"].shape[0]
    for name in list(group.array_keys()):
        if group[name].shape[0] == episodes and name != "obs_mask":
            rewrite(group, name, np.zeros((0, *group[name].shape[1:]), group[name].dtype))
    group.attrs.update(n_episodes=0)


def truncate_chunk(group: zarr.Group) -> None:
    chunk = next(p for p in (Path(str(group.store.root)) / "observations").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:50])


# ---- datasets ---------------------------------------------------------------------------------------


def test_missing_dataset_in_a_real_process(tmp_path):
    missing = tmp_path / "nope.zarr"
    proc = subprocess.run([sys.executable, "-m", "logo", "fit", *BC, "--data.init_args.path", str(missing),
                           "--trainer.default_root_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_user_error(proc.returncode, proc.stderr, f"{missing}: no such file or directory", "fix: check the path")


@pytest.mark.parametrize("case", ["empty-folder", "zero-episodes"])
def test_empty_dataset(case, discrete_dataset, tmp_path, capsys):
    if case == "empty-folder":
        data = tmp_path / "empty.zarr"
        data.mkdir()
        names = (f"{data}: not a readable zarr group (an empty folder",)
    else:
        data = corrupted(discrete_dataset, tmp_path, no_episodes)
        names = ("episode_starts: empty dataset (", "steps in 0 episodes)")
    assert_user_error(*fit(data, tmp_path, capsys=capsys), *names, "logo data validate")


@pytest.mark.parametrize("case", ["text-file", "truncated-chunk", "garbled-metadata"])
def test_corrupt_dataset(case, discrete_dataset, tmp_path, capsys):
    if case == "text-file":
        data = tmp_path / "notes.zarr"
        data.write_text("not a dataset\n")
        names = (f"{data}: not a readable zarr group",)
    elif case == "truncated-chunk":
        data = corrupted(discrete_dataset, tmp_path, truncate_chunk)
        names = ("observations: unreadable array data",)
    else:
        data = corrupted(discrete_dataset, tmp_path, lambda g: None)
        (data / "rewards" / "zarr.json").write_text("{broken")
        names = ("rewards: unreadable array metadata",)
    assert_user_error(*fit(data, tmp_path, capsys=capsys), *names, "fix:", "logo data validate")


def test_wrong_dtype(discrete_dataset, tmp_path, capsys):
    data = corrupted(discrete_dataset, tmp_path, lambda g: rewrite(g, "rewards", g["rewards"][...].astype("float64")))
    assert_user_error(*fit(data, tmp_path, capsys=capsys), "rewards: expected dtype float32, got float64", "fix:")


def test_wrong_shape(discrete_dataset, tmp_path, capsys):
    data = corrupted(discrete_dataset, tmp_path, lambda g: rewrite(g, "observations", g["observations"][..., :-1]))
    assert_user_error(*fit(data, tmp_path, capsys=capsys), "observations: expected shape [T, 3, 12]",
                      "axis 2 should be 12", "fix:")


def test_nan_in_dataset(discrete_dataset, tmp_path, capsys):
    def put_nan(group):
        group["observations"][5, 1, 2] = np.nan

    data = corrupted(discrete_dataset, tmp_path, put_nan)
    assert_user_error(*fit(data, tmp_path, capsys=capsys), "observations: 1 NaN/inf values, first at index (5, 1, 2)",
                      "fix:")


# ---- dims: dataset vs model checkpoint, dataset vs environment ----------------------------------------


@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_checkpoint_of_another_dataset(command, policy_ckpt, four_agents, tmp_path, capsys):
    code, err = run_logo([command, *BC, "--data.init_args.path", four_agents, "--trainer.default_root_dir", tmp_path,
                          "--ckpt_path", policy_ckpt], capsys)
    assert_user_error(code, err, f"ckpt_path {policy_ckpt} does not fit dataset {four_agents}",
                      "n_agents: checkpoint 3, dataset 4", "pass a checkpoint trained on this dataset")


def test_policy_of_another_environment(policy_ckpt, discrete_dataset, tmp_path, capsys):
    pytest.importorskip("mpe2", reason="needs the 'mpe' extra")
    code, err = run_logo(["evaluate", *BC, "--data.init_args.path", discrete_dataset, "--trainer.default_root_dir",
                          tmp_path, "--ckpt_path", policy_ckpt, "--env", "mpe", "--scenario", "simple_spread_v3",
                          "--episodes", "1"], capsys)
    assert_user_error(code, err, "policy BCPolicy does not fit mpe/simple_spread_v3",
                      "obs_dim: checkpoint 12, environment 18", "logo data check")


def test_dataset_of_another_environment(discrete_dataset, capsys):
    pytest.importorskip("mpe2", reason="needs the 'mpe' extra")
    code, err = run_logo(["data", "check", discrete_dataset, "--env", "mpe", "--scenario", "simple_spread_v3"], capsys)
    assert code == 1 and "Traceback" not in err  # a check: exit 1 and every difference, as documented
    assert "does not fit mpe/simple_spread_v3" in err and "observations: dataset 12 per agent" in err


# ---- environments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "collect"])
def test_unknown_env_family(command, policy_ckpt, discrete_dataset, tmp_path, capsys):
    if command == "evaluate":
        args = ["evaluate", *BC, "--data.init_args.path", discrete_dataset, "--trainer.default_root_dir", tmp_path,
                "--ckpt_path", policy_ckpt, "--env", "gridworld", "--scenario", "x"]
        names = ("env family: expected one of ['mamujoco', 'mpe', 'smac', 'smax'], got 'gridworld'",)
    else:
        args = ["collect", "--env", "gridworld", "--scenario", "x", "--behaviour", "random", "--quality", "random",
                "--out", tmp_path / "x.zarr"]
        names = ('Parser key "env"', "gridworld", "{mpe,mamujoco,smax,smac}")
    assert_user_error(*run_logo(args, capsys), *names)


def collect_args(out: Path, scenario: str = "simple_spread_v3") -> list:
    return ["collect", "--env", "mpe", "--scenario", scenario, "--behaviour", "random", "--quality", "random",
            "--episodes", "1", "--out", out, "--no_progress"]


def test_unknown_scenario(tmp_path, capsys):
    assert_user_error(*run_logo(collect_args(tmp_path / "x.zarr", "simple_spreadd_v3"), capsys),
                      "mpe scenario: expected one of ['simple_spread_v3'", "got 'simple_spreadd_v3'")
    assert not (tmp_path / "x.zarr").exists()


def test_missing_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpe2", None)  # `import mpe2` now raises ImportError, as when not installed
    assert_user_error(*run_logo(collect_args(tmp_path / "x.zarr"), capsys),
                      "the 'mpe' environments need the Python package 'mpe2'", "pip install 'logo[mpe]'")


def test_collect_out_exists(discrete_dataset, tmp_path, capsys):
    assert_user_error(*run_logo(collect_args(discrete_dataset), capsys), f"out: {discrete_dataset} already exists",
                      "--overwrite")


# ---- configs ----------------------------------------------------------------------------------------


def test_unknown_config_key_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "logo", "fit", *BC, "--model.init_args.hidden_size", "[8]"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_user_error(proc.returncode, proc.stderr, "Option 'hidden_size' is not accepted", "logo fit --help")


def test_unknown_key_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "extra.yaml"
    config.write_text("trainer:\n  max_epochs: 1\nepochs: 3\n")
    assert_user_error(*run_logo(["fit", *BC, "--config", config], capsys), "does not accept option 'epochs'",
                      "logo fit --help")


def test_malformed_yaml(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("model:\n  init_args:\n    hidden_sizes: [8, 8\n")
    assert_user_error(*run_logo(["fit", *BC, "--config", config], capsys), "Problems parsing config",
                      "did not find expected ',' or ']'", "logo fit --help")


def test_missing_config_file(tmp_path, capsys):
    assert_user_error(*run_logo(["fit", "--config", tmp_path / "nope.yaml"], capsys),
                      f"File does not exist: '{tmp_path / 'nope.yaml'}'")


# ---- checkpoints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["data.synthetic.world_model", "ckpt_path"])
def test_missing_checkpoint(option, discrete_dataset, tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"
    args = rollouts(missing) if option == "data.synthetic.world_model" else ["--ckpt_path", missing]
    code, err = fit(discrete_dataset, tmp_path, *args, capsys=capsys)
    assert_user_error(code, err, option, f"{missing}: no such file; check the path")


def test_unreadable_checkpoint(discrete_dataset, tmp_path, capsys):
    not_a_checkpoint = tmp_path / "model.ckpt"
    not_a_checkpoint.write_text("weights: none\n")
    code, err = fit(discrete_dataset, tmp_path, "--ckpt_path", not_a_checkpoint, capsys=capsys)
    assert_user_error(code, err, f"ckpt_path: {not_a_checkpoint}: cannot be read as a PyTorch checkpoint",
                      "written by `logo fit`")


def test_policy_given_as_world_model(policy_ckpt, discrete_dataset, tmp_path, capsys):
    code, err = fit(discrete_dataset, tmp_path, *rollouts(policy_ckpt), capsys=capsys)
    assert_user_error(code, err, f"data.synthetic.world_model: world-model checkpoint {policy_ckpt}: it is a policy "
                                 "checkpoint",
                      "pass a checkpoint written by `logo fit` of a world model")


@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_world_model_given_as_policy(command, world_model_ckpt, discrete_dataset, tmp_path, capsys):
    # same dataset, so the dims agree: LightningCLI would swap in LogoWorldModel from the checkpoint and train it
    code, err = run_logo([command, *BC, "--data.init_args.path", discrete_dataset, "--trainer.default_root_dir",
                          tmp_path, "--ckpt_path", world_model_ckpt], capsys)
    assert_user_error(code, err, f"ckpt_path: {world_model_ckpt} is a world-model checkpoint (LogoWorldModel)",
                      "pass a checkpoint of BCPolicy", "data.init_args.synthetic.init_args.world_model")


@pytest.mark.parametrize("command", ["fit", "rollout"])
def test_world_model_of_another_dataset(command, other_world_model, discrete_dataset, tmp_path, capsys):
    if command == "fit":
        code, err = fit(discrete_dataset, tmp_path, *rollouts(other_world_model), capsys=capsys)
        names = (f"data.synthetic.world_model {other_world_model} does not fit dataset of navigation_3",
                 "pass a world model trained on this dataset")
    else:
        code, err = run_logo(["rollout", "--checkpoint", other_world_model, "--data", discrete_dataset, "--out",
                              tmp_path / "r.zarr"], capsys)
        names = (f"world model {other_world_model} does not fit dataset {discrete_dataset}",
                 "pass the dataset the world model was trained on")
    assert_user_error(code, err, *names, "n_agents: checkpoint 4, dataset 3")
    assert not (tmp_path / "r.zarr").exists()


def test_rollout_policy_of_another_dataset(other_world_model, policy_ckpt, four_agents, tmp_path, capsys):
    code, err = run_logo(["rollout", "--checkpoint", other_world_model, "--data", four_agents, "--out",
                          tmp_path / "r.zarr", "--policy", policy_ckpt, "--starts", "2", "--horizon", "1"], capsys)
    assert_user_error(code, err, f"policy {policy_ckpt} does not fit the world model",
                      "n_agents: policy 3, world model 4", "--policy random")


# ---- rollout and sampling options -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fit", "rollout"])
def test_horizon_not_positive(command, world_model_ckpt, discrete_dataset, tmp_path, capsys):
    if command == "fit":
        code, err = fit(discrete_dataset, tmp_path, *rollouts(world_model_ckpt, horizon=0), capsys=capsys)
        name = "data.synthetic.horizon: expected a positive integer, got 0"
    else:
        code, err = run_logo(["rollout", "--checkpoint", world_model_ckpt, "--data", discrete_dataset, "--out",
                              tmp_path / "r.zarr", "--horizon", "-3"], capsys)
        name = "horizon: expected at least 1 model step, got -3"
    assert_user_error(code, err, name)


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_real_ratio_outside_unit_interval(value, discrete_dataset, tmp_path, capsys):
    code, err = fit(discrete_dataset, tmp_path, "--data.init_args.real_ratio", value, capsys=capsys)
    assert_user_error(code, err, f"data.real_ratio: expected a value in [0.0, 1.0], got {value}")


# ---- logo pipeline ----------------------------------------------------------------------------------

PIPELINE = ["pipeline", "--config", ROOT / "tests/conf/pipeline_tiny.yaml"]


@pytest.mark.parametrize("seed, names", [
    ("[]", ["seed: an empty list", "a list of distinct seeds"]),
    ("[1, 2, 1]", ["seed: [1] appear(s) more than once in [1, 2, 1]", "give distinct seeds"]),
    ("-1", ["seed: [-1] in -1 is not a seed", "integers from 0 to 4294967295"]),
    ("[0, -2]", ["seed: [-2] in [0, -2] is not a seed"])])
def test_pipeline_bad_seed(seed, names, tmp_path, capsys):
    out, dataset = tmp_path / "runs", tmp_path / "d.zarr"
    code, err = run_logo([*PIPELINE, "--dataset", dataset, "--out", out, "--seed", seed], capsys)
    assert_user_error(code, err, *names)
    assert not out.exists() and not dataset.exists()  # refused before collecting or fitting anything


def test_pipeline_finished_seed_of_other_settings(tmp_path, capsys):
    out, dataset = tmp_path / "runs", tmp_path / "d.zarr"
    finished = out / "seed_3/results.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps({"seed": 3, "dataset": "another.zarr", "rows": []}))
    code, err = run_logo([*PIPELINE, "--dataset", dataset, "--out", out, "--seed", "[3, 4]"], capsys)
    assert_user_error(code, err, f"seed: {finished} was written with other settings (dataset,",
                      f"delete {finished.parent} to rerun it, or choose another out")
    assert json.loads(finished.read_text())["dataset"] == "another.zarr" and not dataset.exists()
    assert not (out / "seed_4").exists()
