"""LOGO vs the 7-member ensemble at equal held-out accuracy: a Pareto table of size, cost and error.

Both families are trained at a few hidden widths with the same budget (Trainer, data module, seed,
batch size and number of updates: ``benchmarks/world_model.py``'s ``train``), then evaluated on the
same held-out episodes: the 1-step next-state MSE (``val/mse_state``) and the 15-step open-loop
next-state MSE along the dataset's own actions (``val/open_loop_mse_k15``, the
``WorldModelDiagnostics`` callback), both in standardised units. Cost is measured afterwards on the
trained models, interleaved round-robin in one process so they share the machine's noise: training
step time on one identical batch (Adam, as ``world_model.py``'s ``step_times``) and H=15 rollout
transitions/s under a uniform random policy. On a CPU both are measured in this process's CPU time
(``time.process_time``; run with one torch thread), since jobs sharing the cores stretch wall time.

Widths: LOGO ``hidden_sizes=[w, w]`` with ``latent_dim=w // 2`` (the default LOGO is w=256); the
ensemble ``hidden_sizes=[w] * 4``, 7 members, 5 elites (the default is w=200). Sizes are chosen for
both families, never by shrinking LOGO alone.

Comparisons (:func:`compare`), per dataset:

* ``match``: a LOGO and an ensemble size whose 1-step and 15-step errors both agree within ``tol``
  (5%): their step-time and rollout ratios are the equal-accuracy cost;
* ``cheapest_as_accurate``: for each size of one family, the cheapest size of the other whose two errors
  are both at most ``1 + tol`` times its own (as accurate or better), with the cost ratio.

``benchmarks/engineering.py`` runs it as its ``world_model_pareto`` figure (full and quick sizes there); run
alone it writes ``benchmarks/results/world_model_pareto/<device>.json``:

    OMP_NUM_THREADS=1 python benchmarks/world_model_pareto.py                          # MPE spread + SMAX 3m
    OMP_NUM_THREADS=1 python benchmarks/world_model_pareto.py --datasets data/mpe/simple_spread_v3/medium.zarr \\
        --logo_widths 64 128 --ensemble_widths 32 64 --steps 100                       # a quick look
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("data/mpe/simple_spread_v3/medium.zarr", "data/smax/3m/medium.zarr")
LOGO_WIDTHS = (128, 256, 384)
ENSEMBLE_WIDTHS = (50, 100, 200)
TOLERANCE = 0.05


def _sibling(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def families() -> dict[str, tuple[type, Any]]:
    """Family name -> (class, width -> constructor kwargs)."""
    from logo.world_model import EnsembleWorldModel, LogoWorldModel

    return {"LOGO": (LogoWorldModel, lambda w: {"hidden_sizes": [w, w], "latent_dim": max(1, w // 2)}),
            "ensemble-7": (EnsembleWorldModel, lambda w: {"ensemble_size": 7, "elites": 5, "hidden_sizes": [w] * 4})}


def measure(datasets: Sequence[str] = DATASETS, logo_widths: Sequence[int] = LOGO_WIDTHS,
            ensemble_widths: Sequence[int] = ENSEMBLE_WIDTHS, steps: int = 3000, batch_size: int = 256,
            seed: int = 0, device: torch.device = torch.device("cpu"), rounds: int = 5, round_steps: int = 10,
            rollout_batch: int = 1024, rollout_repeats: int = 3, horizon: int = 15, tol: float = TOLERANCE,
            log: Any = print, cache: Path | None = None) -> dict:
    """Train every (family, width) on every dataset with the same budget, then time them side by side.

    Returns ``{"config", "rows", "comparisons", "summary"}``; a row per (dataset, family, width) with
    ``params``, ``mse_1``, ``mse_15``, ``step_ms``, ``rollout_per_s``, ``fit_seconds`` and ``pareto`` (no other
    row of the dataset is at least as good on step time and both errors and better on one).

    ``cache``: a JSON file each trained model's errors are written to (its weights beside it, in a folder of the
    same name), with the settings and the git revision it was trained at; a later call with the same settings
    takes those models from it, so an interrupted run continues with the next model. Timing always runs anew.
    """
    from logo.data import OfflineMARLDataModule
    from logo.dims import linked_dims

    wm = _sibling("world_model")
    revision = provenance.git_revision()  # the code that runs is the code at the start
    # on a CPU, this process's CPU time: the cores are shared, and other jobs stretch wall time (not each model alike)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    widths = {"LOGO": list(logo_widths), "ensemble-7": list(ensemble_widths)}
    settings = {"steps": steps, "batch_size": batch_size, "seed": seed, "device": device.type}  # models keyed by width
    done = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "models": {}}
    weights = None if cache is None else cache.with_suffix("")
    rows: list[dict] = []
    for path in datasets:
        name = "/".join(Path(path).parts[-3:-1]) + " " + Path(path).stem
        dm = OfflineMARLDataModule(path, batch_size=batch_size, steps_per_epoch=steps, val_fraction=0.1, seed=seed)
        dm.setup("fit")  # train()'s split and statistics: the timing inputs and the dims
        trained, fits = {}, {}
        for family, (cls, kwargs_of) in families().items():
            for w in widths[family]:
                key = f"{family} w={w}"
                entry = done["models"].get(f"{path}|{key}")
                if entry is not None:
                    model = cls(**linked_dims(dm), **kwargs_of(w))
                    model.load_state_dict(torch.load(weights / entry["weights"], map_location="cpu"))
                    log(f"{name} {key}: taken from {cache} (trained at {entry['git_revision']})")
                else:
                    model, _, metrics, seconds = wm.train(cls, kwargs_of(w), path, steps, batch_size, seed,
                                                          device=device)
                    entry = {"mse_1": metrics.get("val/mse_state"), "mse_15": metrics.get("val/open_loop_mse_k15"),
                             "fit_seconds": seconds, "git_revision": revision}
                    log(f"{name} {key}: {steps} updates in {seconds:.0f} s, 1-step {entry['mse_1']:.4f}, "
                        f"15-step {entry['mse_15']:.4f}")
                    if cache is not None:
                        entry["weights"] = f"{Path(path).parent.name}_{Path(path).stem}_{family}_{w}.pt"
                        weights.mkdir(parents=True, exist_ok=True)
                        torch.save(model.state_dict(), weights / entry["weights"])
                        done["models"][f"{path}|{key}"] = entry
                        provenance.write_json(cache, done)
                trained[key], fits[key] = model.to(device), (family, w, entry)
        batch, start = wm.timing_inputs(dm, batch_size, rollout_batch, seed, device)
        # trains them on: timing comes last
        times = wm.step_times(trained, batch, rounds=rounds, steps=round_steps, clock=clock)
        rates = wm.rollout_rates(trained, start, horizon=horizon, repeats=rollout_repeats, clock=clock)
        for key, model in trained.items():
            family, w, entry = fits[key]
            rows.append({"dataset": name, "path": path, "model": family, "width": w,
                         "params": sum(p.numel() for p in model.parameters()), "mse_1": entry["mse_1"],
                         "mse_15": entry["mse_15"], "step_ms": 1e3 * times[key], "rollout_per_s": rates[key],
                         "fit_seconds": entry["fit_seconds"], "trained_at": entry["git_revision"]})
    mark_pareto(rows)
    comparisons = compare(rows, tol)
    matches = [c for c in comparisons if c["kind"] == "match"]
    if matches:
        best = min(matches, key=lambda c: c["step_ratio"])
        headline = (f"{len(matches)} equal-accuracy pair(s) within {tol:.0%}; best LOGO step / ensemble step "
                    f"{best['step_ratio']:.2f}x, rollout {best['rollout_ratio']:.2f}x ({best['dataset']}, "
                    f"{best['logo']} vs {best['ensemble']})")
    else:
        headline = f"no LOGO and ensemble sizes matched on both errors within {tol:.0%}; see cheapest_as_accurate"
    return {"config": {"datasets": list(datasets), "widths": widths, "steps": steps, "batch_size": batch_size,
                       "seed": seed, "trainer": "benchmarks/world_model.py train (WorldModelDiagnostics, "
                                                "val_fraction 0.1, one epoch of `steps` updates)",
                       "timing": {"clock": "process CPU time" if device.type == "cpu" else "wall",
                                  "optimizer": "Adam(lr=1e-4)", "rounds": rounds, "steps_per_round": round_steps,
                                  "rollout_batch": rollout_batch, "rollout_repeats": rollout_repeats,
                                  "horizon": horizon, "rollout_policy": "uniform random"},
                       "tolerance": tol},
            "rows": rows, "comparisons": comparisons,
            "summary": {"matches": len(matches), "goal": "LOGO step ≤ 0.5x the ensemble's at equal accuracy",
                        "met": bool(matches) and min(c["step_ratio"] for c in matches) <= 0.5,
                        "headline": headline}}


def _dominates(a: dict, b: dict) -> bool:
    keys = ("step_ms", "mse_1", "mse_15")
    return all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)


def mark_pareto(rows: list[dict]) -> None:
    """Set ``pareto`` on each row: no other row of its dataset is at least as cheap and as accurate (both errors)."""
    for r in rows:
        r["pareto"] = r["mse_1"] is not None and r["mse_15"] is not None and not any(
            o is not r and o["dataset"] == r["dataset"] and o["mse_1"] is not None and o["mse_15"] is not None
            and _dominates(o, r) for o in rows)


def _pair(kind: str, logo: dict, ens: dict) -> dict:
    return {"kind": kind, "dataset": logo["dataset"], "logo": f"w={logo['width']}", "ensemble": f"w={ens['width']}",
            "mse_1_ratio": logo["mse_1"] / ens["mse_1"], "mse_15_ratio": logo["mse_15"] / ens["mse_15"],
            "params_ratio": logo["params"] / ens["params"], "step_ratio": logo["step_ms"] / ens["step_ms"],
            "rollout_ratio": logo["rollout_per_s"] / ens["rollout_per_s"]}


def compare(rows: list[dict], tol: float = TOLERANCE) -> list[dict]:
    """Equal-accuracy pairs and, for each size, the cheapest size of the other family at least as accurate.

    Ratios are LOGO / ensemble. ``kind``: ``match`` (both errors within ``tol`` of each other),
    ``cheapest_as_accurate_ensemble`` (for a LOGO size: the ensemble with the lowest step time whose errors
    are both ≤ (1 + tol) x LOGO's; None fields when there is none) and ``cheapest_as_accurate_logo``
    (the same the other way round).
    """
    out: list[dict] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ok = [r for r in rows if r["dataset"] == dataset and r["mse_1"] is not None and r["mse_15"] is not None]
        logos = [r for r in ok if r["model"] == "LOGO"]
        ensembles = [r for r in ok if r["model"] == "ensemble-7"]
        for lo in logos:
            for en in ensembles:
                if all(abs(lo[k] / en[k] - 1) <= tol for k in ("mse_1", "mse_15")):
                    out.append(_pair("match", lo, en))
        for mine, theirs, kind in ((logos, ensembles, "cheapest_as_accurate_ensemble"),
                                   (ensembles, logos, "cheapest_as_accurate_logo")):
            for r in mine:
                good = [o for o in theirs if all(o[k] <= (1 + tol) * r[k] for k in ("mse_1", "mse_15"))]
                if good:
                    o = min(good, key=lambda x: x["step_ms"])
                    out.append(_pair(kind, *((r, o) if kind.endswith("ensemble") else (o, r))))
                else:
                    side = {"logo": f"w={r['width']}", "ensemble": None} if kind.endswith("ensemble") else \
                        {"logo": None, "ensemble": f"w={r['width']}"}
                    out.append({"kind": kind, "dataset": dataset, **side})
    return out


def table(result: dict) -> str:
    """The rows and the comparisons as markdown."""
    lines = ["| dataset | model | width | params | 1-step MSE | 15-step MSE | train step (ms) | "
             "rollout transitions/s | Pareto |", "|---|---|---|---|---|---|---|---|---|"]

    def num(x: float | None, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)
    for r in result["rows"]:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['width']} | {r['params'] / 1e6:.2f}M | "
                     f"{num(r['mse_1'], '.4f')} | {num(r['mse_15'], '.3f')} | {r['step_ms']:.1f} | "
                     f"{r['rollout_per_s']:,.0f} | {'yes' if r['pareto'] else ''} |")
    lines += ["", "| dataset | comparison | LOGO | ensemble-7 | 1-step MSE (L/E) | 15-step MSE (L/E) | params (L/E) "
                  "| train step (L/E) | rollout/s (L/E) |", "|---|---|---|---|---|---|---|---|---|"]
    for c in result["comparisons"]:
        if c["logo"] is None or c["ensemble"] is None:  # no size of the other family is as accurate
            lines.append(f"| {c['dataset']} | {c['kind']} | {c['logo'] or 'none'} | {c['ensemble'] or 'none'} "
                         "| | | | | |")
            continue
        lines.append(f"| {c['dataset']} | {c['kind']} | {c['logo']} | {c['ensemble']} | {c['mse_1_ratio']:.2f} | "
                     f"{c['mse_15_ratio']:.2f} | {c['params_ratio']:.2f}x | {c['step_ratio']:.2f}x | "
                     f"{c['rollout_ratio']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--logo_widths", nargs="+", type=int, default=list(LOGO_WIDTHS))
    parser.add_argument("--ensemble_widths", nargs="+", type=int, default=list(ENSEMBLE_WIDTHS))
    parser.add_argument("--steps", type=int, default=3000, help="training updates per model (the same for all)")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="relative error agreement for a match")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep each trained model here (JSON, weights beside it), so a killed run continues")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default benchmarks/results/world_model_pareto/<device>.json)")
    opts = parser.parse_args(argv)
    device = torch.device(opts.device)
    begin = time.perf_counter()
    result = measure(opts.datasets, opts.logo_widths, opts.ensemble_widths, opts.steps, opts.batch_size, opts.seed,
                     device, tol=opts.tolerance, cache=opts.cache)
    out = opts.out or ROOT / "benchmarks" / "results" / "world_model_pareto" / f"{device.type}.json"
    provenance.write_json(out, {**result, "wall_seconds": time.perf_counter() - begin,
                                "git_revision": provenance.git_revision(), "machine": provenance.machine(device),
                                "torch_threads": torch.get_num_threads(),
                                "command": " ".join(["python", "benchmarks/world_model_pareto.py",
                                                     *(argv or sys.argv[1:])])})
    print(table(result))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
