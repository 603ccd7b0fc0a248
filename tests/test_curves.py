"""`logo curves`: reading curve files and matrix results, grouping seeds, the table by hand, the figure, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logo.cli import main
from logo.curves import curve_from_dict, curve_table, default_panels, group_curves, mean_std, read_curves


def curve_file(path: Path, label: str, seed: int, scores: list[float], q: list[float] | None = None) -> Path:
    points = [{"updates": 100 * (i + 1), "epoch": i, "return_mean": s / 10, "normalized_score": s,
               **({"train/q_data": q[i], "train/rtg_real": 0.5} if q else {})} for i, s in enumerate(scores)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "label": label, "seed": seed, "points": points}))
    return path


@pytest.fixture
def runs(tmp_path) -> Path:
    curve_file(tmp_path / "macql_s0" / "version_0" / "curve.json", "DiscreteMACQL", 0, [10.0, 30.0], [1.0, 2.0])
    curve_file(tmp_path / "macql_s1" / "version_0" / "curve.json", "DiscreteMACQL", 1, [20.0, 50.0], [3.0, 4.0])
    (tmp_path / "macql_s1" / "version_0" / "hparams.json").write_text("{not a curve")  # other files are skipped
    matrix_result = {"key": "smax_3m/medium/bc/seed0", "kind": "policy", "method": "BC", "seed": 0, "ablation": None,
                     "metrics": {"normalized_score": 70.0},
                     "curve": {"format": 1, "label": "BCPolicy", "seed": 0,
                               "points": [{"updates": 100, "normalized_score": 60.0},
                                          {"updates": 200, "normalized_score": 70.0}]}}
    (tmp_path / "matrix" / "bc").mkdir(parents=True)
    (tmp_path / "matrix" / "bc" / "seed0.json").write_text(json.dumps(matrix_result))
    return tmp_path


def test_seeds_of_one_label_are_one_group_with_mean_and_std(runs):
    curves = read_curves(str(runs / "macql_s*")) + read_curves(str(runs / "matrix"))
    groups = group_curves(curves)
    assert list(groups) == ["DiscreteMACQL", "BC"]  # a matrix result is named by its method
    assert [c.seed for c in groups["DiscreteMACQL"]] == [0, 1]
    assert mean_std(groups["DiscreteMACQL"], "normalized_score") == [(100, 15.0, 5.0, 2), (200, 40.0, 10.0, 2)]
    assert curve_table(groups, "normalized_score", 1).splitlines()[2:] == [
        "| DiscreteMACQL | 2 | 15.0 ± 5.0 | 40.0 ± 10.0 |", "| BC | 1 | 60.0 | 70.0 |"]
    assert default_panels(curves) == [["normalized_score"], ["train/q_data_real", "train/rtg_real"]]
    assert groups["DiscreteMACQL"][0].points[1]["train/q_data_real"] == 2.0  # real data only: q_data is the real rows'
    synthetic = {"updates": 1, "train/q_data": 1.0, "train/q_data_real": 2.0, "train/q_data_synthetic": 0.0,
                 "train/td_synthetic": 3.0, "train/synthetic_share": 0.5}
    curve = curve_from_dict({"label": "x", "points": [synthetic]}, "x.json")
    assert curve.points == [synthetic]  # with synthetic rows the policy's own split stays as logged
    assert default_panels([curve]) == [["return_mean"], ["train/q_data_real"], ["train/td_real", "train/td_synthetic"]]
    relabelled = group_curves(read_curves(f"LOGO+MACQL={runs / 'macql_s0'}"))
    assert list(relabelled) == ["LOGO+MACQL"]


def test_logo_curves_prints_the_table_and_writes_the_figure(runs, capsys):
    out = runs / "figures" / "curves.png"
    assert main(["curves", f"MACQL={runs}/macql_s*", str(runs / "matrix"), "--out", str(out),
                 "--metric", "normalized_score", "--metric", "train/q_data,train/rtg_real", "--title", "test"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| MACQL | 2 | 15.00 ± 5.00 | 40.00 ± 10.00 |" in printed
    assert "| MACQL | 2 | 2.00 ± 1.00 | 3.00 ± 1.00 |" in printed  # train/q_data
    assert "| BC | 1 | 60.00 | 70.00 |" in printed and "| BC | 1 | –" not in printed  # BC's curve has no q_data


def test_paths_without_a_curve_are_named(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["curves", str(tmp_path / "empty")]) == 2
    assert "no learning curve found" in capsys.readouterr().err
    assert main(["curves", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["curves", str(runs / "macql_s1" / "version_0" / "hparams.json")]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"key": 1}')
    assert main(["curves", str(tmp_path / "other.json")]) == 2
    assert "holds no learning curve" in capsys.readouterr().err
    assert main(["curves", str(runs / "matrix"), "--metric", "win_rate"]) == 2
    assert "no curve has win_rate; the curves have: normalized_score" in capsys.readouterr().err


def test_backbone_results_are_curves_labelled_by_variant_and_scenario(tmp_path):
    """benchmarks/backbone.py writes one JSON per run with a list of points in its own key names."""
    for seed, scores in ((0, [80.0, 90.0]), (1, [70.0, 100.0])):
        result = {"variant": "lvt01_small", "scenario": "smax_3m", "seed": seed, "updates": 5000, "revision": "abc",
                  "curve": [{"updates": 2500 * (i + 1), "normalized_score": s, "return": s / 50, "win_rate": None,
                             "q_data": 1.0 + i, "rtg_real": 0.5, "td_bias": 0.01, "val_td": 0.1}
                            for i, s in enumerate(scores)]}
        (tmp_path / f"lvt01_small__smax_3m__s{seed}__5k.json").write_text(json.dumps(result))
    groups = group_curves(read_curves(str(tmp_path / "lvt01_small__*.json")))
    assert list(groups) == ["lvt01_small smax_3m"] and [c.seed for c in groups["lvt01_small smax_3m"]] == [0, 1]
    assert mean_std(groups["lvt01_small smax_3m"], "normalized_score") == [(2500, 75.0, 5.0, 2),
                                                                           (5000, 95.0, 5.0, 2)]
    point = groups["lvt01_small smax_3m"][0].points[1]
    assert point == {"updates": 5000, "normalized_score": 90.0, "return_mean": 1.8, "win_rate": None,
                     "train/q_data_real": 2.0, "train/rtg_real": 0.5, "train/td_bias": 0.01, "val/loss": 0.1}
    assert default_panels(groups["lvt01_small smax_3m"]) == [["normalized_score"],
                                                             ["train/q_data_real", "train/rtg_real"]]
