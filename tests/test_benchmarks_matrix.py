"""benchmarks/matrix.py: planning, skipping finished runs and aggregation, on fake result files (no runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import matrix as bm

MATRIX = {
    "results": "results", "runs": "runs", "seeds": [0, 1], "quick": False,
    "evaluation": {"episodes": 32, "first_seed": 10000, "num_envs": 8},
    "scenarios": [{"name": "smax_3m", "world_model": "wm.yaml", "policy": "policy.yaml", "world_model_updates": 3000,
                   "policy_updates": 5000,
                   "datasets": {"medium": {"path": "data/smax/3m/medium.zarr", "collect": "collect.yaml"}}}],
    "world_models": {"logo": [], "ensemble7": ["ensemble.yaml"]},
    "methods": [{"name": "BC", "configs": ["bc.yaml"]},
                {"name": "MACQL", "configs": ["{policy}", "none.yaml"]},
                {"name": "LOGO+MACQL", "configs": ["{policy}"], "world_model": "logo"},
                {"name": "Ensemble-7+MACQL MOPO", "configs": ["{policy}", "penalty.yaml"], "world_model": "ensemble7"}],
    "ablations": [{"name": "horizon", "scenario": "smax_3m", "quality": "medium", "method": "LOGO+MACQL",
                   "key": "data.init_args.horizon", "values": [1, 15], "default": 15}],
}
MACHINE = {"cpu": "Test CPU", "cores": 2, "torch_threads": 1, "torch": "2.13.0", "gpu": None, "platform": "linux"}


def policy(method: str, seed: int, ret: float, score: float, wins: float, ablation=None) -> dict:
    key = f"smax_3m/medium/{bm.slug(method)}" + (f"_horizon{ablation['value']}" if ablation else "") + f"/seed{seed}"
    return {"key": key, "kind": "policy", "scenario": "smax_3m", "quality": "medium", "seed": seed, "method": method,
            "ablation": ablation, "updates": 5000, "fit_seconds": 100.0 + seed, "wall_seconds": 110.0,
            "evaluation": MATRIX["evaluation"], "git_revision": "abc1234", "machine": MACHINE,
            "metrics": {"return_mean": ret, "return_std": 0.5, "episodes": 32, "normalized_score": score,
                        "win_rate": wins}}


def fake_results() -> list[dict]:
    results = [
        {"key": "smax_3m/medium/dataset", "kind": "dataset", "scenario": "smax_3m", "quality": "medium",
         "command": "logo collect --config collect.yaml",
         "attrs": {"n_episodes": 1000, "n_transitions": 14965, "return_mean": 1.03, "return_std": 0.58,
                   "behaviour": "scripted expert"}},
        {"key": "smax_3m/medium/reference", "kind": "reference", "scenario": "smax_3m", "quality": "medium",
         "reference_returns": {"random": 0.2, "expert": 1.9},
         "random": {"return_mean": 0.17, "return_std": 0.09, "episodes": 32, "win_rate": 0.0, "normalized_score": -1.8},
         "behaviour": {"return_mean": 1.03, "return_std": 0.58, "episodes": 1000, "normalized_score": 48.8}},
        policy("BC", 0, 1.60, 82.0, 0.60), policy("BC", 1, 1.70, 88.0, 0.70),
        policy("MACQL", 0, 1.20, 60.0, 0.40), policy("MACQL", 1, 1.40, 70.0, 0.50),
        policy("LOGO+MACQL", 0, 1.0, 50.0, 0.25),  # one seed only: shown as such
        policy("LOGO+MACQL", 0, 0.5, 20.0, 0.0, {"name": "horizon", "key": "data.init_args.horizon", "value": 1}),
    ]
    for kind, mse, params in (("logo", 0.10, 1_000_000), ("ensemble7", 0.08, 2_170_000)):
        for seed in (0, 1):
            results.append({"key": f"smax_3m/medium/wm_{kind}/seed{seed}", "kind": "world_model", "scenario": "smax_3m",
                            "quality": "medium", "seed": seed, "world_model": kind, "params": params, "updates": 3000,
                            "fit_seconds": 200.0, "wall_seconds": 210.0, "git_revision": "abc1234",
                            "machine": MACHINE,
                            "metrics": {"val/mse_state": mse + 0.02 * seed, "val/open_loop_mse_k15": 0.3,
                                        "val/mse_reward": 0.9, "val/spearman_u_error": 0.8}})
    return results


def write_all(root: Path, results: list[dict]) -> None:
    for result in results:
        bm.provenance.write_json(root / "results" / f"{result['key']}.json", result)


def test_plan_orders_every_unit_after_what_it_needs():
    units = bm.plan(MATRIX)
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    for i, unit in enumerate(units):
        assert all(keys.index(n) < i for n in unit.needs), unit
    # 2 (dataset, reference) + per seed: 2 world models + 4 methods, + 1 horizon value (15 is the method's own run)
    assert len(units) == 2 + 2 * (2 + 4) + 2 * 1
    logo = next(u for u in units if u.key == "smax_3m/medium/logo_macql/seed1")
    assert logo.needs == ["smax_3m/medium/dataset", "smax_3m/medium/wm_logo/seed1"]
    ablated = next(u for u in units if u.key == "smax_3m/medium/logo_macql_horizon1/seed0")
    assert ablated.ablation == {"name": "horizon", "key": "data.init_args.horizon", "value": 1}


def test_a_rerun_skips_finished_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bm, "ROOT", tmp_path)
    everything = [{"key": u.key, "kind": u.kind, "scenario": "smax_3m", "quality": "medium"} for u in bm.plan(MATRIX)]
    write_all(tmp_path, everything)
    assert bm.run(MATRIX, tmp_path / "matrix.yaml", jobs=2) == 0  # nothing left to start: no subprocess at all
    out = capsys.readouterr().out
    assert f"{len(everything)} already done, 0 to run" in out and "start" not in out


def test_result_files_are_written_whole(tmp_path):
    path = tmp_path / "a" / "b.json"
    bm.provenance.write_json(path, {"key": "x", "value": 1})
    assert json.loads(path.read_text()) == {"key": "x", "value": 1}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary left behind


def test_aggregate_gives_mean_and_std_over_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bm, "ROOT", tmp_path)
    write_all(tmp_path, fake_results())
    (tmp_path / "results" / "smax_3m" / "broken.json").write_text("{not json")
    text = bm.aggregate(MATRIX)
    assert "unreadable result file" in capsys.readouterr().err

    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| BC |"))
    assert row == "| BC | 2 | 1.65 ± 0.05 | 85.0 ± 3.0 | 0.65 ± 0.05 | 5000 | 100 |"
    row = next(line for line in lines if line.startswith("| MACQL |"))
    assert "1.30 ± 0.10" in row and "65.0 ± 5.0" in row and "0.45 ± 0.05" in row
    row = next(line for line in lines if line.startswith("| LOGO+MACQL |"))
    assert row.startswith("| LOGO+MACQL | 1 | 1.00 | 50.0 | 0.25 |")  # one seed: no ± shown
    assert not any(line.startswith("| Ensemble-7+MACQL MOPO |") for line in lines)  # no results, no row
    assert "| random (evaluated) | – | 0.17 ± 0.09 | -1.8 | 0.00 |" in text
    assert "| behaviour (dataset, 1000 episodes) | – | 1.03 ± 0.58 | 48.8 | – |" in text
    assert "made by `logo collect --config collect.yaml`" in text
    assert "5000 updates each" in text and "env seeds 10000..10031" in text

    wm = [line for line in lines if line.startswith("| logo |") or line.startswith("| ensemble7 |")]
    assert wm[0].startswith("| logo | 2 | 1.00M | 0.1100 ± 0.0100 | 0.300 ± 0.000 |")  # the matrix's order
    assert wm[1].startswith("| ensemble7 | 2 | 2.17M | 0.0900 ± 0.0100 |")

    ablation = text.split("### Ablation: horizon")[1]
    assert "| 1 | 1 | 0.50 | 20.0 | 0.00 |" in ablation
    assert "| 15 (default) | 1 | 1.00 | 50.0 | 0.25 |" in ablation  # the method's own run is the default row
    assert "revisions abc1234" in text and "Test CPU, 2 cores, 1 torch thread(s)" in text


def test_aggregate_of_nothing_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(bm, "ROOT", tmp_path)
    assert bm.aggregate(MATRIX) == "(no results yet)"


def test_update_rewrites_only_between_the_markers(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\nintro\n{bm.BEGIN}\nold tables\n{bm.END}\ndiscussion\n")
    bm.update_file(doc, "| new |")
    assert doc.read_text() == f"# Results\nintro\n{bm.BEGIN}\n| new |\n{bm.END}\ndiscussion\n"
    doc.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        bm.update_file(doc, "x")


def test_the_shipped_matrix_covers_the_issue(tmp_path):
    full, quick = bm.load_matrix(quick=False), bm.load_matrix(quick=True)
    assert len(full["seeds"]) >= 3 and full["evaluation"]["episodes"] >= 32
    names = {s["name"] for s in full["scenarios"]}
    assert {"mpe_simple_spread", "smax_3m", "smax_5m_vs_6m", "mamujoco_halfcheetah_2x3"} <= names
    assert [m["name"] for m in full["methods"]] == ["BC", "MACQL", "LOGO+MACQL", "LOGO+MACQL uniform",
                                                    "LOGO+MACQL penalty", "Ensemble-7+MACQL MOPO", "Direct+MACQL"]
    assert full["ablations"][0]["values"] == [1, 5, 10, 15, 25]
    for scenario in full["scenarios"]:
        collects = [d.get("collect") or d["tiers"] for d in scenario["datasets"].values()]
        for path in [scenario["world_model"], scenario["policy"], *collects]:
            assert (bm.ROOT / path).is_file(), path
    for configs in [*full["world_models"].values(), *(m["configs"] for m in full["methods"])]:
        assert all(c == "{policy}" or (bm.ROOT / c).is_file() for c in configs), configs
    assert quick["results"] != full["results"] and quick["runs"] != full["runs"]  # never mixed


def test_a_policy_unit_records_its_learning_curve(tmp_path, monkeypatch, mpe_dataset):
    """A real (tiny) policy unit: MACQL on the small MPE dataset, evaluated every 10 of its 20 updates."""
    matrix = {
        "results": "results", "runs": "runs", "seeds": [0], "quick": True,
        "evaluation": {"episodes": 2, "first_seed": 10000, "num_envs": 2, "every_n_steps": 10},
        "policy_overrides": {"trainer.log_every_n_steps": 5, "model.init_args.hidden_sizes": [32, 32],
                             "data.init_args.batch_size": 32},
        "scenarios": [{"name": "mpe", "policy": str(bm.ROOT / "configs/mpe/simple_spread_v3/policy.yaml"),
                       "world_model": "unused.yaml", "world_model_updates": 0, "policy_updates": 20,
                       "datasets": {"medium": {"path": str(mpe_dataset), "collect": "unused.yaml"}}}],
        "world_models": {}, "methods": [{"name": "MACQL", "configs": ["{policy}",
                                                                      str(bm.ROOT / "configs/sampling/none.yaml")]}],
    }
    monkeypatch.setattr(bm, "ROOT", tmp_path)
    unit = next(u for u in bm.plan(matrix) if u.kind == "policy")
    result = bm.run_unit(matrix, unit)
    curve = result["curve"]
    assert curve["label"] == "DiscreteMACQL" and curve["seed"] == 0
    assert [p["updates"] for p in curve["points"]] == [10, 20]
    assert all({"train/q_data", "train/rtg_real", "train/td"} <= set(p) for p in curve["points"])
    final = curve["points"][-1]  # the same weights on the same seeds as the final evaluation
    assert final["return_mean"] == pytest.approx(result["metrics"]["return_mean"])
    assert final["normalized_score"] == pytest.approx(result["metrics"]["normalized_score"])
    assert 0 < result["fit_seconds"] < result["wall_seconds"] - sum(p["eval_seconds"] for p in curve["points"])

    # the aggregate tabulates and draws it
    bm.provenance.write_json(tmp_path / "results" / f"{unit.key}.json", result)
    text = bm.aggregate(matrix, figures=tmp_path / "docs" / "figures", link_from=tmp_path / "docs")
    assert "Learning curves: every 10 updates" in text
    assert "![learning curves, mpe medium](figures/curves_mpe_medium.png)" in text
    assert (tmp_path / "docs" / "figures" / "curves_mpe_medium.png").read_bytes()[:4] == b"\x89PNG"
