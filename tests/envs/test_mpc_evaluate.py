"""MPC through `logo evaluate` and EnvEvaluation on a tiny real fit: a LOGO world model and ContinuousMACQL on
random Hopper-3x1 data, the planner from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("gymnasium_robotics", reason="needs the 'mamujoco' extra")

from logo.callbacks import EnvEvaluation  # noqa: E402
from logo.cli import main  # noqa: E402
from logo.envs import make_env  # noqa: E402
from logo.envs.evaluate import evaluate_policy  # noqa: E402
from logo.planning import MPCOptions, MPCPlanner  # noqa: E402
from logo.policy.checkpoint import load_policy  # noqa: E402
from logo.world_model import load_world_model  # noqa: E402


def fit_config(tmp: Path, dataset: Path, name: str, model: dict) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": 20, "accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False,
                    "val_check_interval": 20, "log_every_n_steps": 5, "num_sanity_val_steps": 0,
                    "logger": {"class_path": "CSVLogger", "init_args": {"save_dir": str(tmp / "logs"), "name": name}},
                    "callbacks": [{"class_path": "ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp / name), "save_last": True}}]},
        "model": model,
        "data": {"class_path": "OfflineMARLDataModule",
                 "init_args": {"path": str(dataset), "batch_size": 32, "steps_per_epoch": 20, "real_ratio": 1.0}},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def hopper_fits(tmp_path_factory, hopper_random) -> tuple[Path, Path, Path, Path]:
    """(policy config, ContinuousMACQL checkpoint, LOGO world-model checkpoint, BC checkpoint), 20 updates each."""
    tmp = tmp_path_factory.mktemp("mpc")
    wm = fit_config(tmp, hopper_random, "wm", {"class_path": "LogoWorldModel",
                                               "init_args": {"hidden_sizes": [32, 32], "latent_dim": 16}})
    policy = fit_config(tmp, hopper_random, "macql", {"class_path": "ContinuousMACQL",
                                                      "init_args": {"hidden_sizes": [32, 32], "cql_samples": 2}})
    bc = fit_config(tmp, hopper_random, "bc", {"class_path": "BCPolicy", "init_args": {"hidden_sizes": [16]}})
    for config in (wm, policy, bc):
        assert main(["fit", "--config", str(config)]) == 0
    return policy, tmp / "macql" / "last.ckpt", tmp / "wm" / "last.ckpt", tmp / "bc" / "last.ckpt"


def test_logo_evaluate_plans_from_yaml_like_the_planner_itself(tmp_path, hopper_fits, capsys):
    config, policy_ckpt, wm_ckpt, _ = hopper_fits
    planner = tmp_path / "mpc.yaml"
    planner.write_text(yaml.safe_dump({"planner": {"world_model": str(wm_ckpt), "candidates": 8, "horizon": 3,
                                                   "iterations": 2, "refine": "mppi", "noise_std": 0.3}}))
    capsys.readouterr()
    assert main(["evaluate", "--config", str(config), "--config", str(planner), "--ckpt_path", str(policy_ckpt),
                 "--episodes", "2", "--num_envs", "2", "--seed", "7"]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines() if len(line.split()) == 2)
    assert float(printed["plan_ms_per_step"]) > 0 and float(printed["model_transitions_per_s"]) > 0
    # the same numbers as the planner played by hand on the same seeds
    env = make_env("mamujoco", "Hopper-3x1", num_envs=2)
    options = MPCOptions(world_model=str(wm_ckpt), candidates=8, horizon=3, iterations=2, refine="mppi", noise_std=0.3)
    by_hand = MPCPlanner(load_policy(policy_ckpt), load_world_model(wm_ckpt), env.spec, options)
    result = evaluate_policy(env, by_hand, episodes=2, seed=7).metrics()
    assert float(printed["return_mean"]) == pytest.approx(result["return_mean"], rel=1e-3)
    greedy = evaluate_policy(env, by_hand, episodes=2, seed=7)  # determinism: same seeds, same episodes
    assert greedy.returns.tolist() == pytest.approx(evaluate_policy(env, by_hand, 2, 7).returns.tolist())
    env.close()


def test_env_evaluation_callback_takes_a_planner(hopper_fits, hopper_random):
    _, policy_ckpt, wm_ckpt, _ = hopper_fits
    callback = EnvEvaluation(episodes=1, planner=MPCOptions(world_model=str(wm_ckpt), candidates=4, horizon=2))
    from logo.data.validate import open_dataset

    callback.build(open_dataset(hopper_random)[1])
    metrics = callback.evaluate(load_policy(policy_ckpt)).metrics()
    assert metrics["episodes"] == 1 and metrics["plan_ms_per_step"] > 0
    callback.teardown(None, None, "evaluate")


def test_bad_planner_input_from_the_command_line_is_one_clear_error(hopper_fits, discrete_dataset, capsys, tmp_path):
    """The planner's rows of docs/bad_input.md (here, where a real environment runs)."""
    from tests.test_bad_input import assert_user_error, fit_world_model, run_logo

    config, policy_ckpt, wm_ckpt, bc_ckpt = hopper_fits
    other = fit_world_model(discrete_dataset, tmp_path / "other")  # a world model of a 3-agent point-mass dataset
    base = ["evaluate", "--config", config, "--episodes", "1", "--ckpt_path", policy_ckpt]
    cases = [
        (["--planner.world_model", wm_ckpt, "--planner.candidates", "0"],
         ("planner.candidates: expected a positive integer, got 0",)),
        (["--planner.world_model", other],
         (f"planner.world_model {other} does not fit mamujoco/Hopper-3x1", "obs_dim: world model",
          "plan with a world model trained on this environment's dataset")),
        (["--planner.world_model", policy_ckpt],
         (f"planner.world_model: world-model checkpoint {policy_ckpt}: it is a policy checkpoint",)),
        (["--planner.world_model", tmp_path / "nope.ckpt"], ("planner.world_model: world-model checkpoint",
                                                              "no such file")),
        (["--config", config.parent / "bc.yaml", "--ckpt_path", bc_ckpt, "--planner.world_model", wm_ckpt],
         ("planner.terminal_value: BCPolicy has no critic", "planner.terminal_value: false")),
    ]
    for extra, names in cases:
        code, err = run_logo([*base, *extra], capsys)
        assert_user_error(code, err, *names)
    assert main(["evaluate", "--config", str(config.parent / "bc.yaml"), "--ckpt_path", str(bc_ckpt), "--episodes",
                 "1", "--planner.world_model", str(wm_ckpt), "--planner.terminal_value", "false",
                 "--planner.candidates", "2", "--planner.horizon", "1"]) == 0


def test_pipeline_rows_plan_around_the_named_methods(hopper_fits, hopper_random):
    from logo.pipeline import evaluate_rows

    _, policy_ckpt, wm_ckpt, _ = hopper_fits
    options = MPCOptions(world_model=str(wm_ckpt), candidates=4, horizon=2)
    rows, _ = evaluate_rows(str(hopper_random), {"MACQL": (load_policy(policy_ckpt), 20)}, episodes=2,
                            first_seed=3, num_envs=2, seed=0, planned={"MACQL": options})
    by_name = {row["method"]: row for row in rows}
    assert list(by_name) == ["random", "behaviour", "MACQL", "MACQL + MPC"]
    planned = by_name["MACQL + MPC"]
    assert planned["episodes"] == 2 and planned["updates"] == 20 and planned["plan_ms_per_step"] > 0
    env = make_env("mamujoco", "Hopper-3x1", num_envs=2)  # the row is the planner's score on the same seeds
    planner = MPCPlanner(load_policy(policy_ckpt), load_world_model(wm_ckpt), env.spec, options)
    assert planned["return_mean"] == pytest.approx(evaluate_policy(env, planner, 2, 3).metrics()["return_mean"])
    env.close()


def test_a_world_model_of_another_scenario_is_refused_even_with_the_same_dims(hopper_fits):
    import dataclasses

    from logo.errors import LogoError
    from logo.planning import load_planner_model

    _, _, wm_ckpt, _ = hopper_fits
    env = make_env("mamujoco", "Hopper-3x1", num_envs=1)
    spec = env.spec
    env.close()
    assert load_planner_model(MPCOptions(world_model=str(wm_ckpt)), spec).hparams.obs_dim == spec.obs_dim
    other = dataclasses.replace(spec, scenario="Hopper-3x1-elsewhere")
    with pytest.raises(LogoError, match="planner.world_model .* was trained on a dataset of mamujoco/Hopper-3x1, "
                                        "not mamujoco/Hopper-3x1-elsewhere"):
        load_planner_model(MPCOptions(world_model=str(wm_ckpt)), other)


@pytest.mark.slow
def test_logo_evaluate_plans_in_smax_with_discrete_actions(tmp_path, capfd):
    """The discrete path end to end: a small SMAX 3m dataset, a LOGO world model and DiscreteMACQL fitted on it,
    then `logo evaluate` with the planner (legal actions from the real env first, the model's head after)."""
    pytest.importorskip("jaxmarl", reason="needs the 'smax' extra")
    from logo.collect import collect

    data = tmp_path / "smax.zarr"
    collect(env="smax", scenario="3m", behaviour="scripted", quality="medium", out=str(data), episodes=8,
            num_envs=4, epsilon=0.25, progress=False)
    wm = fit_config(tmp_path, data, "wm", {"class_path": "LogoWorldModel",
                                           "init_args": {"hidden_sizes": [32, 32], "latent_dim": 16}})
    policy = fit_config(tmp_path, data, "macql", {"class_path": "DiscreteMACQL",
                                                  "init_args": {"hidden_sizes": [32, 32], "cql_samples": 4}})
    for config in (wm, policy):
        assert main(["fit", "--config", str(config)]) == 0
    capfd.readouterr()
    assert main(["evaluate", "--config", str(policy), "--ckpt_path", str(tmp_path / "macql" / "last.ckpt"),
                 "--episodes", "4", "--num_envs", "4", "--planner.world_model", str(tmp_path / "wm" / "last.ckpt"),
                 "--planner.candidates", "8", "--planner.horizon", "3", "--planner.iterations", "2"]) == 0
    out = capfd.readouterr().out
    printed = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
    assert float(printed["episodes"]) == 4 and float(printed["plan_ms_per_step"]) > 0, out
    assert 0.0 <= float(printed["win_rate"]) <= 1.0
