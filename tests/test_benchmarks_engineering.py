"""``benchmarks.engineering.tables``: figure files in, markdown out (no benchmark is run)."""

from __future__ import annotations

import json

import pytest

from benchmarks.engineering import tables
from logo.provenance import write_json

MACHINE = {"cpu": "Test CPU", "cores": 2, "torch_threads": 1, "gpu": None, "torch": "2.x", "platform": "Linux"}


def _result(figure: str, rows: list[dict], summary: dict, device: str = "cpu", **extra) -> dict:
    return {"figure": figure, "quick": False, "device": device, "config": {}, "rows": rows, "summary": summary,
            "wall_seconds": 12.0, "git_revision": "abc1234", "machine": MACHINE,
            "finished": "2025-01-01T00:00:00+00:00", **extra}


def test_tables_show_each_figure_with_its_numbers_goal_and_provenance(tmp_path):
    write_json(tmp_path / "cpu" / "lightning_overhead.json", _result("lightning_overhead", [
        {"side": "logo fit", "updates_per_s": 45.5, "ms_per_update": 21.98, "ratio": 0.934, "rounds": 5},
        {"side": "bare loop", "updates_per_s": 48.7, "ms_per_update": 20.53, "ratio": 1.0, "rounds": 5},
    ], {"ratio": 0.934, "goal": "≥ 0.9x", "met": True, "headline": "logo fit / bare loop = 0.934x updates/s"}))
    write_json(tmp_path / "cpu" / "world_model_cost.json", _result("world_model_cost", [
        {"dataset": "smax/3m medium", "model": "LOGO", "params": 1_000_000, "params_ratio": 0.46, "step_ms": 50.5,
         "step_ratio": 0.86, "rollout_per_s": 22923.0, "rollout_ratio": 1.84},
        {"dataset": "smax/3m medium", "model": "ensemble-7", "params": 2_170_000, "params_ratio": 1.0,
         "step_ms": 58.6, "step_ratio": 1.0, "rollout_per_s": 12457.0, "rollout_ratio": 1.0},
    ], {"ratio": 0.86, "goal": "≤ 0.35x", "met": False}))
    gpu = {**MACHINE, "gpu": "Test GPU"}
    write_json(tmp_path / "cuda" / "sampler_share.json", _result("sampler_share", [
        {"buffer": 1_000_000, "mode": "weighted", "rebuild_ms": 4.68, "draw_ms": 0.432, "update_ms": 13.5,
         "share": 0.031},
    ], {"share": 0.031, "goal": "≤ 5%", "met": True}, device="cuda", machine=gpu))
    (tmp_path / "cpu" / "notes.json").write_text(json.dumps({"not": "a figure"}))  # ignored

    out = tables(tmp_path)

    sections = out.split("### ")[1:]
    assert [s.split(":")[0] for s in sections] == ["Lightning overhead", "Sampler share", "World-model cost"]
    overhead, sampler, world = sections
    assert "| logo fit | 45.5 | 21.98 |" in overhead and "| 0.934x |" in overhead
    assert "goal ≥ 0.9x: **met**" in overhead and "0.934x updates/s" in overhead
    assert "Device cpu (Test CPU, 2 cores, 1 torch threads)" in overhead and "git abc1234" in overhead
    assert "| 1,000,000 | weighted | 4.68 | 0.432 | 13.50 | 3.1% |" in sampler
    assert "goal ≤ 5%: **met**" in sampler and "Device cuda (Test GPU; Test CPU" in sampler
    assert "| smax/3m medium | LOGO | 1.00M | 0.46x | 50.5 | 0.86x | 22,923 | 1.84x |" in world
    assert "goal ≤ 0.35x: **not met**" in world


def test_tables_of_an_empty_folder_say_so(tmp_path):
    assert "no engineering results" in tables(tmp_path)


def test_the_pareto_figure_shows_its_rows_and_the_equal_accuracy_comparisons(tmp_path):
    rows = [{"dataset": "mpe", "model": "LOGO", "width": 256, "params": 780_000, "mse_1": 0.0076, "mse_15": 0.208,
             "step_ms": 36.4, "rollout_per_s": 32208.0, "pareto": True}]
    comparisons = [{"kind": "match", "dataset": "mpe", "logo": "w=256", "ensemble": "w=100", "mse_1_ratio": 1.01,
                    "mse_15_ratio": 0.97, "params_ratio": 1.5, "step_ratio": 1.2, "rollout_ratio": 1.4}]
    write_json(tmp_path / "cpu" / "world_model_pareto.json", _result(
        "world_model_pareto", rows, {"goal": "LOGO step ≤ 0.5x the ensemble's at equal accuracy", "met": False,
                                     "headline": "1 equal-accuracy pair(s)"}, detail={"comparisons": comparisons}))
    out = tables(tmp_path)
    assert out.startswith("### World-model cost at equal accuracy")
    assert "| mpe | LOGO | 256 | 0.78M | 0.0076 | 0.208 | 36.4 | 32,208 | yes |" in out
    assert "| mpe | match | w=256 | w=100 | 1.01 | 0.97 | 1.50x | 1.20x | 1.40x |" in out
    assert "**not met**. 1 equal-accuracy pair(s)" in out


def test_macql_candidates_benchmark_times_each_pair_old_and_new(discrete_dataset, tmp_path):
    """The script itself (not a timing): every pair runs both sides on a small discrete dataset and is recorded."""
    from benchmarks.macql_candidates import main

    out = tmp_path / "candidates.json"
    args = ["--dataset", str(discrete_dataset), "--repeats", "1", "--min_run_time", "0.01", "--out", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert set(result["pairs"]) == {"stacked_pass (agent network fwd+bwd)", "cql_sampler (B=256, K=32, N=3, A=5)",
                                    "cql_sampler (whole update)", "conservative_term (real-only batch)"}
    for row in result["pairs"].values():
        assert all(len(row["seconds"][side]) == 1 and row["median"][side] > 0 for side in ("old", "new"))
    from logo.policy import macql
    from logo.policy.macql_losses import sample_legal_joint_actions

    assert macql.sample_legal_joint_actions is sample_legal_joint_actions  # the old side's patch is undone


def test_the_update_speed_figure_comes_first_with_its_three_sides(tmp_path):
    rows = [{"side": "baseline", "code": "f65237c", "config": "f65237c's", "updates_per_s": 29.1,
             "ms_per_update": 34.35, "min_updates_per_s": 27.9, "max_updates_per_s": 30.3, "ratio": 1.0, "rounds": 5},
            {"side": "this checkout", "code": "this checkout", "config": "this checkout's", "updates_per_s": 94.1,
             "ms_per_update": 10.63, "min_updates_per_s": 89.1, "max_updates_per_s": 99.0, "ratio": 3.234,
             "rounds": 5}]
    write_json(tmp_path / "cpu" / "update_speed.json", _result("update_speed", rows, {
        "ratio": 3.234, "goal": "≥ 2x f65237c", "met": True, "headline": "the shipped config runs at 3.23x"}))
    write_json(tmp_path / "cpu" / "lightning_overhead.json", _result("lightning_overhead", [], {"goal": None}))
    out = tables(tmp_path)
    assert out.startswith("### Update speed: DiscreteMACQL updates/s, an earlier revision vs this checkout (cpu)")
    assert "| this checkout | this checkout | this checkout's | 94.1 | 10.63 | 89.1 | 99.0 | 3.23x | 5 |" in out
    assert "goal ≥ 2x f65237c: **met**. the shipped config runs at 3.23x" in out
    assert out.index("### Update speed") < out.index("### Lightning overhead")


def test_the_side_by_side_speed_names_a_revision_this_history_lacks():
    from benchmarks.speed import worktree

    with pytest.raises(RuntimeError, match="baseline revision 'no-such-rev': not in this checkout's git history"):
        with worktree("no-such-rev"):
            pass
