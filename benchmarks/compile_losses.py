"""DiscreteMACQL's opt-in ``compile_losses``: compile time, steady-state updates/s and parameters vs eager.

Two copies of the MPE policy config's DiscreteMACQL (real data only), with the same initial weights,
normalisation statistics, index batches (``update_profile.update_fn``: the module's ``training_step``,
its Adam, gradient clipping and Polyak targets) and global RNG state: one eager, one with
``compile_losses=True``. Each first runs ``--updates`` updates from the same start; the compiled
side's first update includes the compilation (its time minus the eager median is the compile time),
and the two sides' parameters are compared after the last (max absolute difference, and relative to
the parameters' largest magnitude). The yardstick for that difference is a third, eager copy whose
initial weights are moved by one float32 ulp (``torch.nextafter``): Q-learning amplifies any rounding
difference (a flipped greedy action changes a target), so "agree" means "no further apart than eager is
from itself after a one-ulp nudge". Then both keep training in interleaved rounds (eager, compiled,
eager, ...) of ``--round_updates`` updates each, and the medians give the steady-state updates/s, in wall
time and per CPU second of this process (on shared CPU cores other jobs stretch wall time; the CPU
time is the work's own, with one torch thread).

    OMP_NUM_THREADS=1 python benchmarks/compile_losses.py                 # CPU, results/compile/cpu.json
    python benchmarks/compile_losses.py --device cuda
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
DATASET = "data/mpe/simple_spread_v3/medium.zarr"


def _sibling(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(update, device: torch.device) -> float:
    _sync(device)
    begin = time.perf_counter()
    update()
    _sync(device)
    return time.perf_counter() - begin


def _param_diff(a: torch.nn.Module, b: torch.nn.Module) -> tuple[float, float]:
    """Max |a - b| over the trainable parameters, and that relative to max |a|."""
    pa = dict(a.named_parameters())
    diff = max((p.detach().double() - pa[k].detach().double()).abs().max().item() for k, p in b.named_parameters())
    scale = max(p.detach().abs().max().item() for p in pa.values())
    return diff, diff / scale


def measure(dataset: str = DATASET, updates: int = 300, rounds: int = 5, round_updates: int = 100,
            device: torch.device = torch.device("cpu"), backend: str | None = None) -> dict:
    """``backend``: None for the module's own ``torch.compile`` (inductor, ``fallback_random``); another
    ``torch.compile`` backend (e.g. ``aot_eager``: AOTAutograd's graphs run by eager kernels) to see where time goes."""
    profile = _sibling("update_profile")
    eager, dm, clip = profile.build("macql_discrete", dataset, device)
    hparams = {k: v for k, v in eager.hparams.items() if not k.startswith("_")}
    compiled = type(eager)(**{**hparams, "compile_losses": True}).to(device)
    compiled.load_state_dict(eager.state_dict())  # the same weights, targets and normalisation buffers
    compiled.log = lambda *args, **kwargs: None
    compiled.train()
    if backend is not None:
        compiled._compiled_losses = torch.compile(compiled._loss_tensors, backend=backend)
    nudged = type(eager)(**hparams).to(device)
    nudged.load_state_dict(eager.state_dict())
    with torch.no_grad():
        for p in nudged.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, torch.inf)))
    nudged.log = lambda *args, **kwargs: None
    nudged.train()
    sides = {"eager": eager, "compiled": compiled}
    updates_of = {name: profile.update_fn(model, dm, clip, device) for name, model in sides.items()}  # same batches
    nudged_update = profile.update_fn(nudged, dm, clip, device)
    rng = torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    first: dict[str, list[float]] = {}
    for name, update in updates_of.items():
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)
        first[name] = [_timed(update, device) for _ in range(updates)]
    torch.set_rng_state(rng[0])
    if rng[1] is not None:
        torch.cuda.set_rng_state(rng[1], device)
    for _ in range(updates):
        nudged_update()
    abs_diff, rel_diff = _param_diff(eager, compiled)
    ulp_abs, ulp_rel = _param_diff(eager, nudged)
    eager_ms = statistics.median(first["eager"])
    times: dict[str, list[float]] = {name: [] for name in sides}  # updates/s in wall time
    cpu: dict[str, list[float]] = {name: [] for name in sides}  # updates per CPU second of this process
    for _ in range(rounds):
        for name, update in updates_of.items():
            _sync(device)
            begin, begin_cpu = time.perf_counter(), time.process_time()
            for _ in range(round_updates):
                update()
            _sync(device)
            times[name].append(round_updates / (time.perf_counter() - begin))
            cpu[name].append(round_updates / (time.process_time() - begin_cpu))
    rates = {name: statistics.median(r) for name, r in times.items()}
    cpu_rates = {name: statistics.median(r) for name, r in cpu.items()}
    return {"dataset": dataset, "model": "DiscreteMACQL", "backend": backend or "inductor (fallback_random)",
            "policy_config": profile.MODELS["macql_discrete"][0],
            "batch_size": dm.batch_size, "updates_compared": updates, "rounds": rounds, "round_updates": round_updates,
            "compile_seconds": first["compiled"][0] - eager_ms, "first_compiled_update_s": first["compiled"][0],
            "eager_update_ms_median": 1e3 * eager_ms,
            "compiled_update_ms_median": 1e3 * statistics.median(first["compiled"][1:]),
            "updates_per_s": rates, "speedup": rates["compiled"] / rates["eager"],
            "updates_per_cpu_s": cpu_rates, "cpu_speedup": cpu_rates["compiled"] / cpu_rates["eager"],
            "params_max_abs_diff": abs_diff, "params_max_rel_diff": rel_diff,
            "ulp_nudged_eager_max_abs_diff": ulp_abs, "ulp_nudged_eager_max_rel_diff": ulp_rel,
            "within_eager_noise": abs_diff <= 2 * ulp_abs, "detail": {"wall": times, "cpu": cpu}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--updates", type=int, default=300, help="updates from the same start before comparing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round_updates", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default=None, help="another torch.compile backend, e.g. aot_eager")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/compile/<device>.json")
    opts = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*record_function.*")
    device = torch.device(opts.device)
    revision = provenance.git_revision()
    result = measure(opts.dataset, opts.updates, opts.rounds, opts.round_updates, device, opts.backend)
    out = opts.out or ROOT / "benchmarks" / "results" / "compile" / (
        f"{device.type}.json" if opts.backend is None else f"{device.type}_{opts.backend}.json")
    provenance.write_json(out, {**result, "git_revision": revision, "machine": provenance.machine(device),
                                "torch_threads": torch.get_num_threads(),
                                "command": " ".join(["python", "benchmarks/compile_losses.py", *sys.argv[1:]])})
    r = result
    print(f"| side | updates/s, wall (median of {r['rounds']} rounds of {r['round_updates']}) | updates per CPU second "
          "| CPU ms/update |\n|---|---|---|---|")
    for name, rate in r["updates_per_s"].items():
        per_cpu_s = r["updates_per_cpu_s"][name]
        print(f"| {name} | {rate:.1f} | {per_cpu_s:.1f} | {1e3 / per_cpu_s:.2f} |")
    print(f"compiled / eager = {r['speedup']:.3f}x (wall), {r['cpu_speedup']:.3f}x (CPU time); compile time "
          f"{r['compile_seconds']:.1f} s; after "
          f"{r['updates_compared']} updates from the same start the parameters differ by at most "
          f"{r['params_max_abs_diff']:.2e} ({r['params_max_rel_diff']:.2e} of their largest magnitude); eager against "
          f"itself with the initial weights nudged by one ulp: {r['ulp_nudged_eager_max_abs_diff']:.2e}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
