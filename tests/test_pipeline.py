"""`logo pipeline`: the whole chain on a tiny budget, through the shipped stage configs."""

from __future__ import annotations

import csv
import json

import pytest

from logo.cli import main
from tests.conftest import ROOT

pytest.importorskip("mpe2", reason="needs the 'mpe' extra")


def test_pipeline_collects_fits_evaluates_and_tabulates(tmp_path, capsys):
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
