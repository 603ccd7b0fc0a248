"""The `logo` command: entry points, help, tool dispatch, user errors, and every shipped config."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from logo import __version__
from logo.cli import main
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
COLLECT_CONFIGS = [c for c in CONFIGS if c.parent.name == "collect"]  # logo collect, not LightningCLI
STACKED_CONFIGS = [c for c in CONFIGS if c.parent.name == "world_model"]  # stacked after a scenario config
SAMPLING_CONFIGS = [c for c in CONFIGS if c.parent.name == "sampling"]  # stacked after a policy config
LOGGER_CONFIGS = [c for c in CONFIGS if c.parent.name == "logger"]  # stacked last, after any stage config
PIPELINE_CONFIGS = [c for c in CONFIGS if "\nmethods:" in c.read_text()]  # logo pipeline, not LightningCLI
TIERS_CONFIGS = [c for c in CONFIGS if c.parent.name == "tiers"]  # logo tiers, not LightningCLI
PLANNING_CONFIGS = [c for c in CONFIGS if c.parent.name == "planning"]  # logo evaluate, stacked after a policy config
CONFIGS = [c for c in CONFIGS if c not in COLLECT_CONFIGS + STACKED_CONFIGS + SAMPLING_CONFIGS + LOGGER_CONFIGS
           + PIPELINE_CONFIGS + TIERS_CONFIGS + PLANNING_CONFIGS]


def test_console_script_help_lists_every_command():
    out = subprocess.run(["logo", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("fit", "validate", "test", "predict", "evaluate", "logo data", "logo collect"):
        assert command in out


def test_python_dash_m_version():
    out = subprocess.run([sys.executable, "-m", "logo", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"logo {__version__}"


def test_data_help_lists_its_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("info", "validate", "merge", "synth"))


def test_data_info_json_is_one_machine_readable_object(discrete_dataset, capsys):
    assert main(["data", "info", str(discrete_dataset), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["transitions"] > 0 and summary["episodes"] == 60
    assert {"return_mean", "return_std", "return_min", "return_max", "quality"} <= set(summary)


def test_data_info_table_names_sizes_and_returns(discrete_dataset, capsys):
    assert main(["data", "info", str(discrete_dataset)]) == 0
    out = capsys.readouterr().out
    assert "transitions" in out and "return_mean" in out and "navigation_3" in out


def test_data_synth_writes_a_valid_dataset(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert main(["data", "synth", "--out", str(out), "--episodes", "5", "--action_kind", "continuous"]) == 0
    assert main(["data", "validate", str(out)]) == 0
    assert "OK (" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--episodes", "5"]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


def test_fit_on_missing_dataset_is_one_clear_error(tmp_path, capsys):
    code = main(["fit", "--config", str(ROOT / "configs/synthetic/bc.yaml"),
                 "--data.init_args.path", str(tmp_path / "nope.zarr")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.zarr: no such file or directory" in err and "Traceback" not in err


def test_unknown_config_key_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(ROOT / "configs/synthetic/bc.yaml"), "--model.init_args.no_such_key", "1"])
    assert exc.value.code != 0
    assert "no_such_key" in capsys.readouterr().err


def printed_config(args: list[str], capsys) -> str:
    """What ``logo <args> --print_config`` prints, asserting it exits cleanly."""
    with pytest.raises(SystemExit) as exc:
        main([*args, "--print_config"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(ROOT)) for c in CONFIGS])
def test_every_shipped_config_parses(config, capsys):
    printed = printed_config(["fit", "--config", str(config)], capsys)
    assert "class_path" in printed and "trainer:" in printed


@pytest.mark.parametrize("config", STACKED_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in STACKED_CONFIGS])
def test_every_stacked_config_parses_on_top_of_a_scenario(config, capsys):
    printed = printed_config(["fit", "--config", str(ROOT / "configs/smax/3m/world_model.yaml"),
                              "--config", str(config)], capsys)
    model_class = next(line for line in config.read_text().splitlines() if "class_path" in line).split()[-1]
    assert f"class_path: logo.world_model.{model_class}" in printed


@pytest.mark.parametrize("config", SAMPLING_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in SAMPLING_CONFIGS])
def test_every_sampling_config_parses_on_top_of_a_policy(config, capsys):
    printed = printed_config(["fit", "--config", str(ROOT / "configs/smax/3m/policy.yaml"),
                              "--config", str(config)], capsys)
    expected = "synthetic: null" if config.stem == "none" else f"mode: {config.stem}"
    assert expected in printed and "DiscreteMACQL" in printed


@pytest.mark.parametrize("config", PLANNING_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in PLANNING_CONFIGS])
def test_every_planning_config_parses_for_evaluate_on_top_of_a_policy(config, capsys):
    printed = yaml.safe_load(printed_config(["evaluate", "--config", str(ROOT / "configs/smax/3m/policy.yaml"),
                                             "--config", str(config)], capsys))
    assert printed["planner"] == {**printed["planner"], **yaml.safe_load(config.read_text())["planner"]}


def test_the_tiny_pipeline_config_with_a_planner_parses(capsys):
    printed = yaml.safe_load(printed_config(["pipeline", "--config", str(ROOT / "tests/conf/pipeline_tiny.yaml")],
                                            capsys))
    assert printed["planner"]["candidates"] == 4 and printed["planner"]["world_model"] is None


def test_a_pipeline_seed_is_one_int_or_a_list_of_them(tmp_path, capsys):
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("seed: [0, 1, 2]\n")
    tiny = ["pipeline", "--config", str(ROOT / "tests/conf/pipeline_tiny.yaml")]
    assert yaml.safe_load(printed_config(tiny, capsys))["seed"] == 0
    assert yaml.safe_load(printed_config([*tiny, "--config", str(seeds)], capsys))["seed"] == [0, 1, 2]
    assert yaml.safe_load(printed_config([*tiny, "--seed", "[4, 5]"], capsys))["seed"] == [4, 5]


@pytest.mark.parametrize("stage", ["world_model", "policy"])
@pytest.mark.parametrize("config", LOGGER_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in LOGGER_CONFIGS])
def test_every_logger_config_adds_its_logger_after_the_stage_csv_logger(config, stage, capsys):
    printed = printed_config(["fit", "--config", str(ROOT / f"configs/smax/3m/{stage}.yaml"),
                              "--config", str(config)], capsys)
    loggers = yaml.safe_load(printed)["trainer"]["logger"]
    assert [logger["class_path"] for logger in loggers][0] == "logo.loggers.LogoCSVLogger"
    assert loggers[0]["init_args"]["save_dir"] == f"runs/smax/3m/{stage}"  # checkpoints stay where they were
    assert len(loggers) == 2 and loggers[1]["init_args"]["log_model"] is False


BENCHMARK_PIPELINES = sorted((ROOT / "benchmarks/configs").glob("*.yaml"))  # stacked on the quickstart


@pytest.mark.parametrize("config", PIPELINE_CONFIGS + BENCHMARK_PIPELINES,
                         ids=[str(c.relative_to(ROOT)) for c in PIPELINE_CONFIGS + BENCHMARK_PIPELINES])
def test_every_pipeline_config_parses(config, capsys):
    stack = ["--config", str(ROOT / "configs/quickstart.yaml")] if config in BENCHMARK_PIPELINES else []
    printed = printed_config(["pipeline", *stack, "--config", str(config)], capsys)
    assert "methods:" in printed and "world_model:" in printed
    for stage_config in re.findall(r"(?<![\w/])configs/[\w/.-]+\.yaml", config.read_text()):
        assert (ROOT / stage_config).is_file(), stage_config


@pytest.mark.parametrize("config", COLLECT_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in COLLECT_CONFIGS])
def test_every_collect_config_parses(config, capsys):
    printed = printed_config(["collect", "--config", str(config)], capsys)
    assert "behaviour:" in printed and "out:" in printed


@pytest.mark.parametrize("config", TIERS_CONFIGS, ids=[str(c.relative_to(ROOT)) for c in TIERS_CONFIGS])
def test_every_tiers_config_parses(config, capsys):
    printed = printed_config(["tiers", "--config", str(config)], capsys)
    assert "behaviour:" in printed and "medium_fraction: 0.5" in printed  # the same fraction for every scenario
    for behaviour in yaml.safe_load(config.read_text())["behaviour"]:
        assert (ROOT / behaviour).is_file(), behaviour


def test_there_are_configs_to_parse():
    assert CONFIGS and COLLECT_CONFIGS and STACKED_CONFIGS and SAMPLING_CONFIGS and PIPELINE_CONFIGS and TIERS_CONFIGS
    assert PLANNING_CONFIGS
