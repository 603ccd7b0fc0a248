"""`logo pipeline`: the whole chain on a tiny budget, through the shipped stage configs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from logo.cli import main
from logo.pipeline import combine_seeds
from tests.conftest import ROOT

TINY = str(ROOT / "tests/conf/pipeline_tiny.yaml")


def needs_mpe():
    pytest.importorskip("mpe2", reason="needs the 'mpe' extra")


def test_pipeline_collects_fits_evaluates_and_tabulates(tmp_path, capsys):
    needs_mpe()
    dataset, out = tmp_path / "spread.zarr", tmp_path / "runs"
    code = main(["pipeline", "--config", str(ROOT / "tests/conf/pipeline_tiny.yaml"), "--dataset", str(dataset),
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    results_path = out / next(p.name for p in out.iterdir()) / "results.json"
    assert printed[-1] == str(results_path)  # the path comes last
    results = json.loads(results_path.read_text())
    assert results["dataset_collected"] and dataset.is_dir()
    rows = {r["method"]: r for r in results["rows"]}
    assert list(rows) == ["random", "behaviour", "BC", "MACQL", "LOGO+MACQL", "LOGO+MACQL + MPC"]
    for name in ("random", "BC", "MACQL", "LOGO+MACQL", "LOGO+MACQL + MPC"):
        assert rows[name]["episodes"] == 2 and "normalized_score" in rows[name]
    assert rows["LOGO+MACQL + MPC"]["plan_ms_per_step"] > 0 and results["planner"]["methods"] == ["LOGO+MACQL"]
    assert rows["behaviour"]["episodes"] == 16
    assert rows["MACQL"]["updates"] == rows["LOGO+MACQL"]["updates"] == 10
    for name in ("random", "behaviour", "BC", "MACQL", "LOGO+MACQL"):  # the table printed holds every row
        assert any(line.startswith(name) for line in printed)
    # the stages wrote ordinary logo runs: the world model's checkpoint, and LOGO+MACQL's synthetic data
    assert results["world_model_checkpoint"].endswith("best.ckpt")
    metrics = next((results_path.parent / "logo_macql").rglob("metrics.csv"))
    logged = {k for row in csv.DictReader(metrics.open()) for k, v in row.items() if v}
    assert {"synthetic/u_mean", "synthetic/ess", "train/td_synthetic", "train/synthetic_share"} <= logged
    macql = next((results_path.parent / "macql").rglob("metrics.csv"))
    assert not any(k.startswith("synthetic/") for k in csv.DictReader(macql.open()).fieldnames)

    # a second run reuses the dataset
    assert main(["pipeline", "--config", str(ROOT / "tests/conf/pipeline_tiny.yaml"), "--dataset", str(dataset),
                 "--out", str(out), "--methods", "[]"]) == 0
    assert "exists: using it" in capsys.readouterr().out


def test_pipeline_over_a_list_of_seeds_reports_mean_and_std_and_resumes(tmp_path, capsys):
    needs_mpe()
    dataset, out = tmp_path / "spread.zarr", tmp_path / "runs"
    args = ["pipeline", "--config", TINY, "--dataset", str(dataset), "--out", str(out), "--planner", "null"]
    assert main([*args, "--seed", "[3]"]) == 0  # an interrupted run of seeds [3, 5]: seed 3 finished ...
    (out / "seed_5").mkdir()
    (out / "seed_5/partial.ckpt").write_text("")  # ... and seed 5 had started
    seed_3 = (out / "seed_3/results.json").stat().st_mtime_ns
    capsys.readouterr()

    assert main([*args, "--seed", "[3, 5]"]) == 0
    printed = capsys.readouterr().out
    assert f"seed 3: {out / 'seed_3/results.json'} exists: reusing it, not rerunning" in printed
    assert f"seed 5: {out / 'seed_5'} has no results.json (an unfinished run): clearing it" in printed
    assert (out / "seed_3/results.json").stat().st_mtime_ns == seed_3 and not (out / "seed_5/partial.ckpt").exists()
    assert printed.strip().splitlines()[-1] == str(out / "results.json")  # the path comes last
    combined = json.loads((out / "results.json").read_text())
    assert combined["seed"] == [3, 5] and combined["reused_seeds"] == [3] and "ddof 0" in combined["std"]
    per_seed = {n: json.loads((out / f"seed_{n}/results.json").read_text()) for n in (3, 5)}
    for n, results in per_seed.items():  # each seed is a whole one-seed run: its own world model and policies
        assert results["seed"] == n and results["world_model_checkpoint"].startswith(str(out / f"seed_{n}/world_model"))
        assert combined["world_model_checkpoints"][str(n)] == results["world_model_checkpoint"]
        assert results["evaluation"] == combined["evaluation"] == {"episodes": 2, "first_seed": 10_000}
        assert (out / f"seed_{n}/macql").is_dir() and (out / f"seed_{n}/logo_macql").is_dir()
    rows = {r["method"]: r for r in combined["rows"]}
    assert list(rows) == ["random", "behaviour", "BC", "MACQL", "LOGO+MACQL"]
    for name, row in rows.items():
        for key, std_key in (("return_mean", "return_std_over_seeds"),
                             ("normalized_score", "normalized_score_std_over_seeds")):
            values = [next(r for r in per_seed[n]["rows"] if r["method"] == name)[key] for n in (3, 5)]
            assert [one[key] for one in row["per_seed"]] == values
            assert row[key] == pytest.approx(np.mean(values)) and row[std_key] == pytest.approx(np.std(values))
        assert [one["seed"] for one in row["per_seed"]] == [3, 5]
    assert rows["MACQL"]["return_std_over_seeds"] > 0  # the two seeds trained different policies
    assert rows["behaviour"]["return_std_over_seeds"] == 0 and rows["MACQL"]["updates"] == 10
    table = printed.strip().splitlines()
    assert any(line.startswith("LOGO+MACQL") and line.count("±") == 2 for line in table)
    assert any("seed 3" in line and "seed 5" in line for line in table)

    assert main([*args, "--seed", "[3, 5]"]) == 0  # a rerun refits nothing
    printed = capsys.readouterr().out
    assert "seed 5: " in printed and "reusing it" in printed and "world model:" not in printed
    assert (out / "seed_3/results.json").stat().st_mtime_ns == seed_3
    assert json.loads((out / "results.json").read_text())["rows"] == combined["rows"]

    assert main([*args, "--seed", "[3, 5]", "--eval_episodes", "3"]) == 2  # not reused under other settings
    error = capsys.readouterr().err
    assert "seed: " in error and "seed_3" in error and "evaluation differ" in error


def test_combine_seeds_by_hand():
    def rows(ret, score, wins):
        return [{"method": "MACQL", "return_mean": ret, "return_std": 9.0, "episodes": 4, "updates": 10,
                 "source": "s", "normalized_score": score, "win_rate": wins, "fit_seconds": 2.0}]

    (row,) = combine_seeds({0: rows(-1.0, 10.0, 0.5), 7: rows(-3.0, 30.0, 0.25)})
    assert row["return_mean"] == -2.0 and row["return_std_over_seeds"] == 1.0  # ddof 0 (ddof 1 would give 1.41)
    assert row["normalized_score"] == 20.0 and row["normalized_score_std_over_seeds"] == 10.0
    assert row["win_rate"] == 0.375 and row["win_rate_std_over_seeds"] == 0.125
    assert row["seeds"] == [0, 7] and row["updates"] == 10 and row["episodes"] == 4
    assert row["per_seed"][1] == {"seed": 7, "return_mean": -3.0, "return_std": 9.0, "normalized_score": 30.0,
                                  "win_rate": 0.25, "updates": 10, "fit_seconds": 2.0}
