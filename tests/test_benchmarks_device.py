"""benchmarks/device_check.sh runs end to end (on the CPU here; on a CUDA device where one is lent)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_device_check_script_runs_on_the_cpu():
    # about 2 minutes on 2 idle cores; the limit is for a hang, with room for cores shared with other jobs
    result = subprocess.run(["bash", "benchmarks/device_check.sh", "--device", "cpu"], cwd=ROOT, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = ROOT / "benchmarks" / "results" / "device_check" / "cpu"
    two_stage = json.loads((out / "two_stage.json").read_text())
    assert two_stage["device"] == "cpu" and two_stage["policy"]["rollout_rounds"] >= 1
    assert two_stage["world_model"]["updates_per_s"] > 0 and two_stage["policy"]["rollout_transitions_per_s"] > 0
    assert "passed" in (out / "pytest_gpu.log").read_text() or "skipped" in (out / "pytest_gpu.log").read_text()
    figures = ROOT / "benchmarks" / "results" / "quick" / "engineering" / "cpu"
    assert {p.stem for p in figures.glob("*.json")} >= {"lightning_overhead", "world_model_cost", "world_model_pareto"}
    compiled = json.loads((out / "compile_losses.json").read_text())
    assert compiled["updates_per_s"]["compiled"] > 0 and compiled["compile_seconds"] > 0
    assert compiled["params_max_abs_diff"] < 1e-2  # 50 updates from the same start: rounding-level drift only
