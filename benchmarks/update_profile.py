"""Where one training update's time goes: ``torch.profiler`` over the bare update of each learner.

The update is written out as ``logo fit`` does it (the module's own ``training_step`` with its logging
switched off, its optimizer, gradient clipping and target-network update), with a
``record_function`` region per phase: data gather, forward and loss, backward, gradient clipping,
optimizer, target networks. Inside the forward, the learners' own regions (``DiscreteMACQL``:
``macql/q_values``, ``macql/cql_sampling``, ``macql/mixer``, ``macql/td_target``) split it further.
Logging is not in the bare update: its cost is the ``logo fit`` / bare-loop ratio of
``benchmarks/engineering.py``'s ``lightning_overhead`` figure.

    OMP_NUM_THREADS=1 python benchmarks/update_profile.py                 # DiscreteMACQL and the LOGO world model
    OMP_NUM_THREADS=1 python benchmarks/update_profile.py --models macql_continuous --updates 50

Results go to ``benchmarks/results/profile/<device>.json`` (atomic); the markdown tables are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name -> (config with the model and its hyperparameters, dataset)
    "macql_discrete": ("configs/mpe/simple_spread_v3/policy.yaml", "data/mpe/simple_spread_v3/medium.zarr"),
    "macql_continuous": ("configs/mamujoco/HalfCheetah-2x3/policy.yaml", "data/mamujoco/HalfCheetah-2x3/medium.zarr"),
    "logo_world_model": ("configs/mpe/simple_spread_v3/world_model.yaml", "data/mpe/simple_spread_v3/medium.zarr"),
}
PHASES = ("gather", "forward_loss", "backward", "clip", "optimizer", "target_update")


def build(name: str, dataset: str, device: torch.device):
    """The model, data module and gradient-clip value that ``logo fit`` of the model's config builds."""
    from logo.cli import LogoCLI

    config = ROOT / MODELS[name][0]
    args = ["--config", str(config), "--data.init_args.path", dataset, "--trainer.logger=false",
            "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false"]
    if "policy" in MODELS[name][0]:
        args += ["--config", str(ROOT / "configs" / "sampling" / "none.yaml")]
    cli = LogoCLI(args=args, run=False, save_config_callback=None)
    dm, model = cli.datamodule, cli.model
    dm.setup("fit")
    model.units_from(dm)  # what the module's setup copies from the data module at fit
    model.log = lambda *args, **kwargs: None  # logging is measured by the lightning_overhead figure
    return model.to(device).train(), dm, cli.trainer.gradient_clip_val


def update_fn(model, dm, clip: float | None, device: torch.device) -> Callable[[], None]:
    """One training update of ``model`` on a fresh real batch, each phase in its own profiler region."""
    from logo.data.reader import gather_transitions

    optimizers = model.configure_optimizers()
    optimizer = optimizers[0] if isinstance(optimizers, (list, tuple)) else optimizers
    params = [p for group in optimizer.param_groups for p in group["params"]]
    storage, indices = dm.storage_on(device), dm.train_indices.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    targets = [getattr(model, name) for name in ("q_target", "mixer_target", "critic_target") if hasattr(model, name)]
    sources = [getattr(model, name) for name in ("q_net", "mixer", "critic") if hasattr(model, name)]
    tau = getattr(model.hparams, "tau", None)

    def update() -> None:
        from logo.policy.losses import soft_update

        with record_function("gather"):
            picked = indices[torch.randint(len(indices), (dm.batch_size,), generator=generator, device=device)]
            batch = gather_transitions(storage, picked)
            batch["weights"] = torch.ones(len(picked), device=device)
            batch["synthetic"] = torch.zeros(len(picked), dtype=torch.bool, device=device)
        with record_function("forward_loss"):
            loss = model.training_step(batch, 0)
        with record_function("backward"):
            optimizer.zero_grad()
            loss.backward()
        with record_function("clip"):
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
        with record_function("optimizer"):
            optimizer.step()
        with record_function("target_update"):
            for target, source in zip(targets, sources):
                soft_update(target, source, tau)

    return update


def run(name: str, dataset: str, updates: int, warmup: int, device: torch.device) -> dict:
    model, dm, clip = build(name, dataset, device)
    update = update_fn(model, dm, clip, device)
    for _ in range(warmup):
        update()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(updates):
        update()
    sync()
    ms_per_update = 1000 * (time.perf_counter() - start) / updates
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(updates):
            update()
        sync()
    events = {e.key: e for e in prof.key_averages()}
    total = sum(events[p].cpu_time_total for p in PHASES if p in events)
    phases = [{"phase": p, "ms": events[p].cpu_time_total / 1000 / updates, "share": events[p].cpu_time_total / total}
              for p in PHASES if p in events]
    regions = [{"region": k, "ms": e.cpu_time_total / 1000 / updates, "share": e.cpu_time_total / total}
               for k, e in events.items() if "/" in k and not k.startswith(("aten", "autograd", "Optimizer"))]
    ops = sorted((e for k, e in events.items() if k.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)[:12]
    top = [{"op": e.key, "self_ms": e.self_cpu_time_total / 1000 / updates, "calls": e.count // updates,
            "share": e.self_cpu_time_total / total} for e in ops]
    return {"model": name, "class": type(model).__name__, "config": MODELS[name][0], "dataset": dataset,
            "batch_size": dm.batch_size,
            "ms_per_update": ms_per_update, "updates": updates, "phases": phases, "regions": regions,
            "top_ops": top}


def tables(result: dict) -> str:
    lines = [f"#### {result['class']} ({result['config']}, batch {result['batch_size']}): "
             f"{result['ms_per_update']:.2f} ms/update without the profiler", "",
             "| phase | ms/update | share |", "|---|---|---|"]
    lines += [f"| {r['phase']} | {r['ms']:.2f} | {r['share']:.0%} |" for r in result["phases"]]
    if result["regions"]:
        lines += ["", "| region inside the forward | ms/update | share of the update |", "|---|---|---|"]
        lines += [f"| {r['region']} | {r['ms']:.2f} | {r['share']:.0%} |" for r in result["regions"]]
    lines += ["", "| op (self time) | ms/update | calls/update | share |", "|---|---|---|---|"]
    lines += [f"| `{r['op']}` | {r['self_ms']:.2f} | {r['calls']} | {r['share']:.0%} |" for r in result["top_ops"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["macql_discrete", "logo_world_model"])
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", action="append", default=[], metavar="MODEL=PATH",
                        help="another dataset for a model, e.g. "
                             "macql_continuous=data/mamujoco/HalfCheetah-2x3/random.zarr")
    parser.add_argument("--out", default=None, help="result file (default benchmarks/results/profile/<device>.json)")
    opts = parser.parse_args(argv)
    device = torch.device(opts.device)
    results = []
    datasets = {name: str(ROOT / path) for name, (_, path) in MODELS.items()}
    for pair in opts.dataset:
        name, _, path = pair.partition("=")
        if name not in MODELS or not path:
            parser.error(f"--dataset: expected MODEL=PATH with MODEL in {sorted(MODELS)}, got {pair!r}")
        datasets[name] = str(Path(path).resolve())
    for name in opts.models:
        dataset = datasets[name]
        if not Path(dataset).exists():
            print(f"{name}: skipped, {dataset} does not exist (collect it first: docs/environments.md)")
            continue
        results.append(run(name, dataset, opts.updates, opts.warmup, device))
        print(tables(results[-1]), end="\n\n", flush=True)
    out = Path(opts.out) if opts.out else ROOT / "benchmarks" / "results" / "profile" / f"{device.type}.json"
    provenance.write_json(out, {"revision": provenance.git_revision(), "machine": provenance.machine(device),
                                "torch_threads": torch.get_num_threads(), "results": results})
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
