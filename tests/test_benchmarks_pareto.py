"""``benchmarks.world_model_pareto``: the Pareto marks and the equal-accuracy comparisons, on rows made by hand."""

from __future__ import annotations

import pytest

from benchmarks.world_model_pareto import compare, mark_pareto, table


def _row(model: str, width: int, params: int, mse_1: float, mse_15: float, step_ms: float, rollout: float,
         dataset: str = "mpe") -> dict:
    return {"dataset": dataset, "model": model, "width": width, "params": params, "mse_1": mse_1, "mse_15": mse_15,
            "step_ms": step_ms, "rollout_per_s": rollout}


ROWS = [_row("LOGO", 128, 200, 0.020, 0.50, 10.0, 9000.0),
        _row("LOGO", 256, 800, 0.010, 0.20, 30.0, 3000.0),
        _row("ensemble-7", 50, 100, 0.0102, 0.21, 12.0, 2000.0),  # matches LOGO 256 within 5% on both errors
        _row("ensemble-7", 200, 1600, 0.008, 0.15, 40.0, 1000.0),
        _row("ensemble-7", 100, 400, 0.011, 0.22, 45.0, 1500.0)]  # worse and slower than ensemble 50: dominated


def test_pareto_marks_only_the_undominated_sizes():
    rows = [dict(r) for r in ROWS]
    mark_pareto(rows)
    # LOGO 256 stays on the front (ensemble 50 is cheaper but 2% less accurate); ensemble 100 is dominated by 50
    assert [r["pareto"] for r in rows] == [True, True, True, True, False]
    rows[2].update(mse_1=0.0099, mse_15=0.19)  # now ensemble 50 is cheaper and more accurate on both errors
    mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [True, False, True, True, False]


def test_equal_accuracy_pairs_and_the_cheapest_as_accurate_size():
    out = compare(ROWS, tol=0.05)
    matches = [c for c in out if c["kind"] == "match"]
    assert [(c["logo"], c["ensemble"]) for c in matches] == [("w=256", "w=50")]
    m = matches[0]
    assert m["step_ratio"] == pytest.approx(30.0 / 12.0) and m["rollout_ratio"] == pytest.approx(1.5)
    assert m["mse_1_ratio"] == pytest.approx(0.010 / 0.0102) and m["params_ratio"] == pytest.approx(8.0)
    for_logo = {c["logo"]: c["ensemble"] for c in out if c["kind"] == "cheapest_as_accurate_ensemble"}
    assert for_logo == {"w=128": "w=50", "w=256": "w=50"}  # 0.0102 <= 1.05 * 0.010 and 0.21 <= 1.05 * 0.20
    for_ensemble = {c["ensemble"]: c["logo"] for c in out if c["kind"] == "cheapest_as_accurate_logo"}
    assert for_ensemble == {"w=50": "w=256", "w=200": None, "w=100": "w=256"}  # no LOGO is as good as ensemble 200
    assert compare(ROWS, tol=0.0) and not [c for c in compare(ROWS, tol=0.0) if c["kind"] == "match"]


def test_datasets_are_compared_apart_and_tabled():
    rows = [dict(r) for r in ROWS] + [_row("LOGO", 256, 800, 0.3, 0.9, 5.0, 1.0, dataset="smax")]
    mark_pareto(rows)
    out = compare(rows)
    assert all(c["dataset"] == "mpe" for c in out if c["kind"] == "match")
    assert [c["ensemble"] for c in out if c["dataset"] == "smax"] == [None]  # no ensemble was trained there
    text = table({"rows": rows, "comparisons": out})
    assert "| mpe | LOGO | 256 | 0.00M | 0.0100 | 0.200 | 30.0 | 3,000 | yes |" in text
    assert "| mpe | ensemble-7 | 100 | 0.00M | 0.0110 | 0.220 | 45.0 | 1,500 |  |" in text
    assert "| mpe | match | w=256 | w=50 | 0.98 | 0.95 | 8.00x | 2.50x | 1.50x |" in text
    assert "| smax | cheapest_as_accurate_ensemble | w=256 | none |" in text
