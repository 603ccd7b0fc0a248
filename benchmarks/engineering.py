"""The engineering figures, each measured side by side in one run and reported as a ratio to its goal.

* ``update_speed``: DiscreteMACQL updates/s of a real ``logo fit`` (the MPE policy config with real data only) at
  an earlier revision (``--speed_baseline``, default f65237c, the code issue 17 started from) against this
  checkout, interleaved in fresh subprocesses (``benchmarks/speed.py``). Three sides: the baseline's code with its
  config, this code with the baseline's config (what the code changes alone give) and this code with its own
  config (what a user of the shipped config gets, config changes included); goal: the shipped side >= 2x.
* ``lightning_overhead``: DiscreteMACQL updates/s through ``logo fit`` (the MPE policy config with real
  data only, ``configs/sampling/none.yaml``) vs a bare PyTorch loop doing the identical update (same
  init, index batches, gather, loss, Adam, gradient clipping and Polyak targets); goal >= 0.9x.
* ``sampler_share``: drawing the synthetic half of a batch from a 1e6-transition buffer as a share of
  (draw + one DiscreteMACQL update), weighted and uniform (``benchmarks/sampler.py``); goal <= 5%.
* ``world_model_cost``: training step time, H=15 rollout transitions/s and parameters of LOGO, LOGO-small
  and the direct model relative to the 7-member ensemble (``benchmarks/world_model.py``), on MPE
  simple_spread and SMAX 3m medium; untrained models (cost does not depend on training); goal: LOGO's
  step <= 0.35x the ensemble's.
* ``world_model_pareto``: LOGO and the 7-member ensemble each trained at a few hidden widths with the same budget,
  held-out 1-step and 15-step open-loop errors against parameters, step time and rollout transitions/s, and the
  sizes where the two families' errors match within 5% (``benchmarks/world_model_pareto.py``); goal: LOGO's step
  <= 0.5x the ensemble's at equal accuracy; MPE only here (``world_model_pareto.py`` alone adds SMAX 3m). The
  longest figure (about 10 min of one core at full sizes, far longer in wall time on shared cores).
* ``dataset_load``: zarr -> memory load rate of a 1M-transition dataset and random batches from memory
  vs straight from zarr (``benchmarks/data_loading.py``); reported, no goal.

Every figure is written to its own JSON file, ``benchmarks/results/engineering/<device>/<figure>.json``
(``--quick``: ``benchmarks/results/quick/engineering/...``); a figure whose file exists is skipped, so an
interrupted run continues where it stopped (``--force`` measures again). ``--tables`` prints the
markdown tables of whatever files exist (``tables()`` is what other scripts import).

    OMP_NUM_THREADS=1 python benchmarks/engineering.py                    # full sizes, ~15 min on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/engineering.py --quick            # small sizes, ~4 min
    python benchmarks/engineering.py --device cuda
    python benchmarks/engineering.py --only lightning_overhead --force
    python benchmarks/engineering.py --tables [--quick]

Side A of ``lightning_overhead`` is a real ``logo fit``: ``LogoCLI(["fit", "--config", policy.yaml,
"--config", none.yaml, overrides...])`` with no logger, checkpointing, progress bar, validation or config
callback, plus one timing callback (passed as a trainer default, so it is not a config entry).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import yaml

from logo import provenance  # git revision, machine and atomic writes of every result file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MPE = "data/mpe/simple_spread_v3/medium.zarr"
SMAX = "data/smax/3m/medium.zarr"
FIGURES = ("update_speed", "lightning_overhead", "sampler_share", "world_model_cost", "world_model_pareto",
           "dataset_load")

# sizes: the (full) and a small run that finishes all four figures in a few minutes on 2 CPU cores
SETTINGS = {
    "full": {"speed_steps": 600, "speed_warmup": 100, "speed_rounds": 5,
             "overhead_steps": 1000, "overhead_warmup": 100, "overhead_rounds": 5,
             "buffer_size": 1_000_000, "sampler_repeats": 50, "sampler_rounds": 5,
             "wm_steps": 20, "wm_rounds": 5, "rollout_batch": 1024, "rollout_repeats": 3,
             "transitions": 1_000_000, "disk_batches": 5, "memory_batches": 2000,
             "pareto_steps": 3000, "pareto_logo_widths": (128, 256, 384), "pareto_ensemble_widths": (50, 100, 200),
             "pareto_smax": False, "pareto_cache": "partial"},
    "quick": {"speed_steps": 150, "speed_warmup": 30, "speed_rounds": 2,
              "overhead_steps": 200, "overhead_warmup": 20, "overhead_rounds": 5,
              "buffer_size": 100_000, "sampler_repeats": 20, "sampler_rounds": 3,
              "wm_steps": 10, "wm_rounds": 3, "rollout_batch": 256, "rollout_repeats": 2,
              "transitions": 100_000, "disk_batches": 3, "memory_batches": 300,
              "pareto_steps": 100, "pareto_logo_widths": (32, 64), "pareto_ensemble_widths": (16, 32),
              "pareto_smax": False, "pareto_cache": "quick/partial"},
}


def _sibling(name: str) -> ModuleType:
    """Another script of this folder, whether this file runs as a script (its folder is ``sys.path[0]``)
    or is imported as ``benchmarks.engineering``."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)




def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- update_speed
# side -> (whose code, whose policy config): "baseline" or "this"
SPEED_SIDES = {"baseline": ("baseline", "baseline"), "this code, baseline's config": ("this", "baseline"),
               "this checkout": ("this", "this")}
# data keys of the synthetic source in earlier revisions' flat data sections (real data only here)
SYNTHETIC_KEYS = {"world_model", "sampling", "horizon", "rollout_every", "rollout_batch", "buffer_rollouts",
                  "synthetic", "real_ratio", "temperature", "clip", "uncertainty_clip"}


def update_speed(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """Updates/s of ``logo fit`` at ``opts.speed_baseline`` against this checkout, rounds interleaved."""
    speed = _sibling("speed")
    config = speed.CONFIGS["discrete"][0]
    dataset = str((ROOT / opts.mpe_dataset).resolve())
    steps, warmup = s["speed_steps"], s["speed_warmup"]
    rates: dict[str, list[float]] = {side: [] for side in SPEED_SIDES}
    with speed.worktree(opts.speed_baseline) as baseline:
        # the baseline's policy config, less its synthetic-data keys (real data only on every side, and this
        # checkout nests them under data.synthetic): its network, learner and batch on this checkout's code
        old = yaml.safe_load((baseline / config).read_text())
        old["data"]["init_args"] = {k: v for k, v in old["data"]["init_args"].items() if k not in SYNTHETIC_KEYS}
        translated = baseline / "baseline_policy_real_only.yaml"
        translated.write_text(yaml.safe_dump(old))
        checkouts = {"baseline": baseline, "this": ROOT}
        configs = {"baseline": {"baseline": config, "this": str(translated)}, "this": {"this": config}}
        for _ in range(s["speed_rounds"]):
            for side, (code, cfg) in SPEED_SIDES.items():
                rates[side].append(speed.measure(checkouts[code], configs[cfg][code], dataset, steps, warmup,
                                                 device.type))
    med = {side: statistics.median(r) for side, r in rates.items()}
    label = {"baseline": opts.speed_baseline, "this": "this checkout"}
    rows = [{"side": side, "code": label[code], "config": f"{label[cfg]}'s", "updates_per_s": med[side],
             "ms_per_update": 1000 / med[side], "min_updates_per_s": min(rates[side]),
             "max_updates_per_s": max(rates[side]), "ratio": med[side] / med["baseline"], "rounds": len(rates[side])}
            for side, (code, cfg) in SPEED_SIDES.items()]
    shipped, code = med["this checkout"] / med["baseline"], med["this code, baseline's config"] / med["baseline"]
    return {
        "config": {"dataset": dataset, "model": "DiscreteMACQL", "policy_config": config, "sampling": "none",
                   "baseline": opts.speed_baseline, "steps": steps, "warmup": warmup, "rounds": s["speed_rounds"],
                   "measurement": "benchmarks/speed.py MEASURE: a fresh logo fit subprocess per side and round"},
        "rows": rows,
        "summary": {"ratio": shipped, "code_only_ratio": code, "goal": f"≥ 2x {opts.speed_baseline}",
                    "met": shipped >= 2.0,
                    "headline": f"the shipped config runs at {shipped:.2f}x {opts.speed_baseline}'s updates/s; "
                                f"the code changes alone (the baseline's config on both sides) give {code:.2f}x"},
        "detail": {"updates_per_s": rates},
    }


# ---------------------------------------------------------------- lightning_overhead
def lightning_overhead(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """``logo fit`` vs a bare loop on the identical updates, interleaved A, B, A, B, ...; medians of rounds."""
    from lightning.pytorch.callbacks import Callback

    from logo.cli import LogoCLI

    steps, warmup = s["overhead_steps"], s["overhead_warmup"]
    if not 0 < warmup < steps:
        raise ValueError(f"overhead: need 0 < warmup ({warmup}) < steps ({steps})")

    class StepClock(Callback):
        """Wall time from the end of step ``warmup`` to the end of the last step; the module and the global
        RNG just before the first update (what the bare loop starts from) and the module after the last."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.init = _state(pl_module)
                self.rng = _rng_state(device)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx + 1 in (warmup, steps):
                _sync(device)
                setattr(self, "start" if batch_idx + 1 == warmup else "end", time.perf_counter())
            if batch_idx + 1 == steps:
                self.final = _state(pl_module)

    root = tempfile.mkdtemp()  # default_root_dir: nothing is written there, but never into the checkout
    config = ROOT / "configs" / "mpe" / "simple_spread_v3" / "policy.yaml"
    args = ["fit", "--config", str(config), "--config", str(ROOT / "configs" / "sampling" / "none.yaml"),
            "--data.init_args.path", opts.mpe_dataset, "--data.init_args.steps_per_epoch", str(steps),
            "--trainer.max_steps", str(steps), "--trainer.callbacks=[]", "--trainer.logger=false",
            "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
            "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--trainer.accelerator", "gpu" if device.type == "cuda" else "cpu", "--trainer.devices=1",
            "--trainer.default_root_dir", root]
    rates: dict[str, list[float]] = {"logo fit": [], "bare loop": []}
    init_diffs, final_diffs = [], []
    dm = hparams = seed = clip = None
    try:
        for _ in range(s["overhead_rounds"]):
            clock = StepClock()
            cli = LogoCLI(args=args, save_config_callback=None, trainer_defaults={"callbacks": [clock]})
            rates["logo fit"].append((steps - warmup) / (clock.end - clock.start))
            if dm is None:  # the bare loop reads the first fit's data module (its in-memory storage)
                dm, seed = cli.datamodule, cli.config["fit"]["seed_everything"]
                hparams = {k: v for k, v in cli.model.hparams.items() if not k.startswith("_")}
                clip = cli.trainer.gradient_clip_val
            seconds, init, final = bare_loop(type(cli.model), hparams, dm, steps, warmup, clip, seed, clock.rng,
                                             device)
            rates["bare loop"].append((steps - warmup) / seconds)
            init_diffs.append(_max_abs_diff(init, clock.init))
            final_diffs.append(_max_abs_diff(final, clock.final))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = {side: statistics.median(r) for side, r in rates.items()}
    ratio = med["logo fit"] / med["bare loop"]
    rows = [{"side": side, "updates_per_s": med[side], "ms_per_update": 1000 / med[side],
             "min_updates_per_s": min(rates[side]), "max_updates_per_s": max(rates[side]),
             "ratio": med[side] / med["bare loop"], "rounds": len(rates[side]), "timed_steps": steps - warmup}
            for side in rates]
    return {
        "config": {"dataset": opts.mpe_dataset, "model": "DiscreteMACQL",
                   "policy_config": str(config.relative_to(ROOT)), "sampling": "none", "batch_size": dm.batch_size,
                   "steps": steps, "warmup": warmup,
                   "rounds": s["overhead_rounds"], "gradient_clip_val": clip, "seed": seed, "hparams": hparams},
        "rows": rows,
        "summary": {"ratio": ratio, "goal": "≥ 0.9x", "met": ratio >= 0.9,
                    "init_max_abs_diff": max(init_diffs), "final_max_abs_diff": max(final_diffs),
                    "headline": f"logo fit / bare loop = {ratio:.3f}x updates/s; after {steps} identical updates "
                                f"the parameters differ by at most {max(final_diffs):.2e}"},
        "detail": {"updates_per_s": rates, "init_max_abs_diff": init_diffs, "final_max_abs_diff": final_diffs},
    }


def bare_loop(cls: type, hparams: dict, dm: Any, steps: int, warmup: int, clip: float | None, seed: int,
              rng: dict, device: torch.device) -> tuple[float, dict, dict]:
    """What one ``logo fit`` step does, written out in plain PyTorch: seconds for steps ``warmup..steps``,
    and the module's state before the first and after the last update.

    The same class and arguments (built fresh after the same seed), the normalisation statistics
    ``OfflinePolicy.setup`` copies, the data module's index sampler re-created with its seed, the gather
    from the same in-memory tensors, the loss of ``conservative_td_loss`` without its logging, the
    module's own ``configure_optimizers``, norm clipping as Lightning does it (all the optimizer's
    parameters) and the Polyak update of ``DiscreteMACQL.optimizer_step``. The global RNG (CQL's sampled
    joint actions) is put in the state ``logo fit`` had before its first update. On CPU both sides then
    compute bit-identical updates; on a GPU, kernels may differ in float summation order.
    """
    from lightning.pytorch import seed_everything

    from logo.data.reader import gather_transitions
    from logo.data.samplers import RandomIndexBatches, sampler_seed
    from logo.policy.losses import soft_update, weighted_mean

    seed_everything(seed, verbose=False)
    model = cls(**hparams)
    model.obs_norm.set_stats(dm.statistics["obs_mean"], dm.statistics["obs_std"])
    model.state_norm.set_stats(dm.statistics["state_mean"], dm.statistics["state_std"])
    model.to(device).train()
    init = _state(model)
    optimizer = model.configure_optimizers()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    storage = dm.storage_on(device)
    batches = RandomIndexBatches(dm.train_indices, dm.batch_size, steps, seed=sampler_seed(dm.seed, 0))
    hp = model.hparams
    _set_rng_state(rng, device)
    _sync(device)
    start = time.perf_counter()
    for i, indices in enumerate(batches):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        indices = indices.to(device)
        batch = gather_transitions(storage, indices)
        batch["weights"] = torch.ones(len(indices), device=device)
        batch["synthetic"] = torch.zeros(len(indices), dtype=torch.bool, device=device)
        parts = model.losses(batch)
        cql, cql_weights = model.conservative_term(parts["cql"], parts["q_data_attached"], batch, hp.cql_synthetic)
        loss = weighted_mean(parts["td"], batch["weights"]) + hp.cql_alpha * weighted_mean(cql, cql_weights)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        soft_update(model.q_target, model.q_net, hp.tau)
        soft_update(model.mixer_target, model.mixer, hp.tau)
    _sync(device)
    return time.perf_counter() - start, init, _state(model)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        raise RuntimeError(f"state keys differ: {sorted(a.keys() ^ b.keys())}")
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def _rng_state(device: torch.device) -> dict:
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------- sampler_share
def sampler_share(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """Draw time of the synthetic half-batch vs one policy update, interleaved over rounds; medians."""
    from logo.synthetic import SamplingOptions, SyntheticBuffer

    sampler = _sibling("sampler")
    size, repeats, batch_size = s["buffer_size"], s["sampler_repeats"], opts.batch_size
    generator = torch.Generator(device=device).manual_seed(opts.seed)
    update = sampler.policy_update(batch_size, device, generator)
    data = sampler.fake_transitions(size, device, generator)
    buffers = {}
    for mode in ("weighted", "uniform"):
        buffers[mode] = SyntheticBuffer(size, SamplingOptions(mode), generator=generator)
        buffers[mode].add(data)
    del data
    times: dict[str, list[float]] = {"update": []}
    for _ in range(s["sampler_rounds"]):
        times["update"].append(sampler.timed(update, repeats, device))
        for mode, buf in buffers.items():
            times.setdefault(f"{mode}/rebuild", []).append(sampler.timed(buf.refresh, 5, device))
            buf.refresh()
            times.setdefault(f"{mode}/draw", []).append(
                sampler.timed(lambda b=buf: b.sample(batch_size // 2), repeats, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [{"buffer": size, "mode": mode, "rebuild_ms": 1e3 * med[f"{mode}/rebuild"],
             "draw_ms": 1e3 * med[f"{mode}/draw"], "update_ms": 1e3 * med["update"],
             "share": med[f"{mode}/draw"] / (med[f"{mode}/draw"] + med["update"])} for mode in buffers]
    worst = max(rows, key=lambda r: r["share"])
    return {
        "config": {"buffer_size": size, "batch_size": batch_size, "synthetic_rows": batch_size // 2,
                   "shapes": {"n_agents": sampler.N, "obs_dim": sampler.OBS, "state_dim": sampler.STATE,
                              "n_actions": sampler.ACTIONS},
                   "update": "DiscreteMACQL losses + Adam on a fixed batch (benchmarks/sampler.py)",
                   "repeats": repeats, "rounds": s["sampler_rounds"], "seed": opts.seed},
        "rows": rows,
        "summary": {"share": worst["share"], "goal": "≤ 5%", "met": worst["share"] <= 0.05,
                    "headline": f"worst draw share {worst['share']:.1%} ({worst['mode']}, {size:,} transitions)"},
        "detail": {k: [1e3 * t for t in v] for k, v in times.items()},
    }


# ---------------------------------------------------------------- world_model_cost
def world_model_cost(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """Step time, rollout rate and size of each world model on identical batches, models interleaved."""
    from lightning.pytorch import seed_everything

    from logo.data import OfflineMARLDataModule
    from logo.dims import linked_dims

    wm = _sibling("world_model")
    rows, datasets = [], []
    for path in (opts.mpe_dataset, opts.smax_dataset):
        dm = OfflineMARLDataModule(path, batch_size=opts.batch_size, seed=opts.seed)
        dm.setup("fit")
        name = f"{dm.spec.env_family}/{dm.spec.scenario} {Path(path).stem}"
        datasets.append(name)
        obs_mask = torch.from_numpy(dm.dataset.arrays["obs_mask"])
        models = {}
        for model_name, (cls, kwargs) in wm.MODELS.items():
            seed_everything(opts.seed, verbose=False)
            models[model_name] = cls(**linked_dims(dm), **kwargs)
            models[model_name].set_statistics(dm.statistics, obs_mask)
            models[model_name].to(device)
        batch, start = wm.timing_inputs(dm, opts.batch_size, s["rollout_batch"], opts.seed, device)
        times = wm.step_times(models, batch, rounds=s["wm_rounds"], steps=s["wm_steps"])
        rates = wm.rollout_rates(models, start, horizon=opts.horizon, repeats=s["rollout_repeats"])
        params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
        ref = "ensemble-7"
        for model_name in models:
            rows.append({"dataset": name, "model": model_name, "params": params[model_name],
                         "params_ratio": params[model_name] / params[ref], "step_ms": 1e3 * times[model_name],
                         "step_ratio": times[model_name] / times[ref], "rollout_per_s": rates[model_name],
                         "rollout_ratio": rates[model_name] / rates[ref]})
    logo = {r["dataset"]: r["step_ratio"] for r in rows if r["model"] == "LOGO"}
    worst = max(logo.values())
    return {
        "config": {"datasets": [opts.mpe_dataset, opts.smax_dataset], "models": {k: v[1] for k, v in wm.MODELS.items()},
                   "reference": "ensemble-7", "batch_size": opts.batch_size, "optimizer": "Adam(lr=1e-4)",
                   "steps_per_round": s["wm_steps"], "rounds": s["wm_rounds"], "horizon": opts.horizon,
                   "rollout_batch": s["rollout_batch"], "rollout_repeats": s["rollout_repeats"],
                   "rollout_policy": "uniform random", "trained": False, "seed": opts.seed},
        "rows": rows,
        "summary": {"ratio": worst, "goal": "≤ 0.35x", "met": worst <= 0.35,
                    **{f"logo_step_ratio[{k}]": v for k, v in logo.items()},
                    "headline": "LOGO step / ensemble-7 step: "
                                + ", ".join(f"{v:.2f}x ({k})" for k, v in logo.items())},
    }


# ---------------------------------------------------------------- world_model_pareto
def world_model_pareto(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """Both families at several widths, same training budget, errors vs cost (``benchmarks/world_model_pareto.py``)."""
    pareto = _sibling("world_model_pareto")
    # each finished dataset is kept here until the figure is done, so a killed run continues where it stopped
    cache = RESULTS / s["pareto_cache"] / f"world_model_pareto_{device.type}.json"
    datasets = [opts.mpe_dataset] + ([opts.smax_dataset] if s["pareto_smax"] else [])
    result = pareto.measure(datasets, s["pareto_logo_widths"], s["pareto_ensemble_widths"], s["pareto_steps"],
                            opts.batch_size, opts.seed, device, rounds=s["wm_rounds"], round_steps=s["wm_steps"],
                            rollout_batch=s["rollout_batch"], rollout_repeats=s["rollout_repeats"],
                            horizon=opts.horizon, log=lambda line: print(line, flush=True),
                            cache=cache)
    cache.unlink(missing_ok=True)  # finished: the figure's file holds it all
    shutil.rmtree(cache.with_suffix(""), ignore_errors=True)
    return {**result, "detail": {"comparisons": result["comparisons"]}}


# ---------------------------------------------------------------- dataset_load
def dataset_load(s: dict, device: torch.device, opts: argparse.Namespace) -> dict:
    """Write a synthetic MPE-shaped dataset, then time its load into memory and random batches."""
    io = _sibling("data_loading")
    tmp = Path(tempfile.mkdtemp())
    try:
        write_s = io.write(tmp / "bench.zarr", s["transitions"], seed=opts.seed)
        m = io.measure(tmp / "bench.zarr", opts.batch_size, s["disk_batches"], s["memory_batches"], device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = m["transitions"]
    gib_s = m["memory_bytes"] / 2**30 / m["load_seconds"]
    row = {"transitions": n, "disk_mib": m["disk_bytes"] / 2**20, "memory_mib": m["memory_bytes"] / 2**20,
           "load_seconds": m["load_seconds"], "load_gib_per_s": gib_s, "load_transitions_per_s": n / m["load_seconds"],
           "write_seconds": write_s, "write_transitions_per_s": n / write_s,
           "zarr_batches_per_s": m["zarr_batches_per_s"], "memory_batches_per_s": m["memory_batches_per_s"],
           "memory_over_zarr": m["memory_batches_per_s"] / m["zarr_batches_per_s"]}
    return {
        "config": {"transitions": s["transitions"], "shapes": {"n_agents": io.N_AGENTS, "obs_dim": io.OBS_DIM,
                                                              "n_actions": io.N_ACTIONS, "episode": io.EPISODE},
                   "batch_size": opts.batch_size, "disk_batches": s["disk_batches"],
                   "memory_batches": s["memory_batches"], "writer": "DatasetWriter (zstd, validated)",
                   "seed": opts.seed},
        "rows": [row],
        "summary": {"load_gib_per_s": gib_s, "load_transitions_per_s": n / m["load_seconds"],
                    "memory_over_zarr": row["memory_over_zarr"], "goal": None, "met": None,
                    "headline": f"{n:,} transitions load at {gib_s:.2f} GiB/s ({m['load_seconds']:.2f} s); random "
                                f"batches from memory are {row['memory_over_zarr']:,.0f}x faster than from zarr"},
    }


MEASURE: dict[str, Callable[[dict, torch.device, argparse.Namespace], dict]] = {
    "update_speed": update_speed, "lightning_overhead": lightning_overhead, "sampler_share": sampler_share,
    "world_model_cost": world_model_cost, "world_model_pareto": world_model_pareto, "dataset_load": dataset_load}


# ---------------------------------------------------------------- results files
def run_figure(name: str, quick: bool, device: torch.device, opts: argparse.Namespace, out: Path) -> dict:
    begin, revision = time.perf_counter(), provenance.git_revision()  # the code that runs is the code at the start
    result = MEASURE[name](SETTINGS["quick" if quick else "full"], device, opts)
    result = {"figure": name, "quick": quick, "device": device.type, "config": result["config"],
              "rows": result["rows"], "summary": result["summary"], "wall_seconds": time.perf_counter() - begin,
              "git_revision": revision, "machine": provenance.machine(device),
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              **({"detail": result["detail"]} if "detail" in result else {})}
    provenance.write_json(out, result)
    return result


# ---------------------------------------------------------------- tables
TITLES = {
    "update_speed": "Update speed: DiscreteMACQL updates/s, an earlier revision vs this checkout",
    "lightning_overhead": "Lightning overhead: DiscreteMACQL updates/s, `logo fit` vs a bare PyTorch loop",
    "sampler_share": "Sampler share: drawing the synthetic half-batch vs one policy update",
    "world_model_cost": "World-model cost: LOGO vs the direct model vs an ensemble of 7",
    "world_model_pareto": "World-model cost at equal accuracy: LOGO vs an ensemble of 7, each at several widths",
    "dataset_load": "Dataset load: zarr -> memory, and random batches from memory vs zarr",
}


def _num(spec: str) -> Callable[[Any], str]:
    return lambda v: spec.format(v)


# per figure: (row key, column header, formatter)
COLUMNS: dict[str, list[tuple[str, str, Callable[[Any], str]]]] = {
    "update_speed": [("side", "side", str), ("code", "code", str), ("config", "policy config", str),
                     ("updates_per_s", "updates/s (median)", _num("{:,.1f}")),
                     ("ms_per_update", "ms/update", _num("{:.2f}")), ("min_updates_per_s", "min", _num("{:,.1f}")),
                     ("max_updates_per_s", "max", _num("{:,.1f}")), ("ratio", "x baseline", _num("{:.2f}x")),
                     ("rounds", "rounds", str)],
    "lightning_overhead": [("side", "side", str), ("updates_per_s", "updates/s (median)", _num("{:,.1f}")),
                           ("ms_per_update", "ms/update", _num("{:.2f}")),
                           ("min_updates_per_s", "min", _num("{:,.1f}")), ("max_updates_per_s", "max", _num("{:,.1f}")),
                           ("ratio", "x bare loop", _num("{:.3f}x")), ("rounds", "rounds", str),
                           ("timed_steps", "timed steps/round", str)],
    "sampler_share": [("buffer", "buffer", _num("{:,}")), ("mode", "mode", str),
                      ("rebuild_ms", "rebuild after a round (ms)", _num("{:.2f}")),
                      ("draw_ms", "draw (ms)", _num("{:.3f}")), ("update_ms", "update (ms)", _num("{:.2f}")),
                      ("share", "draw / (draw + update)", _num("{:.1%}"))],
    "world_model_cost": [("dataset", "dataset", str), ("model", "model", str),
                         ("params", "params", lambda v: f"{v / 1e6:.2f}M"),
                         ("params_ratio", "x ensemble", _num("{:.2f}x")),
                         ("step_ms", "train step (ms)", _num("{:.1f}")), ("step_ratio", "x ensemble", _num("{:.2f}x")),
                         ("rollout_per_s", "rollout transitions/s", _num("{:,.0f}")),
                         ("rollout_ratio", "x ensemble", _num("{:.2f}x"))],
    "world_model_pareto": [("dataset", "dataset", str), ("model", "model", str), ("width", "width", str),
                           ("params", "params", lambda v: f"{v / 1e6:.2f}M"), ("mse_1", "1-step MSE", _num("{:.4f}")),
                           ("mse_15", "15-step MSE", _num("{:.3f}")), ("step_ms", "train step (ms)", _num("{:.1f}")),
                           ("rollout_per_s", "rollout transitions/s", _num("{:,.0f}")),
                           ("pareto", "Pareto", lambda v: "yes" if v else "")],
    "dataset_load": [("transitions", "transitions", _num("{:,}")), ("disk_mib", "on disk (MiB)", _num("{:,.0f}")),
                     ("memory_mib", "in memory (MiB)", _num("{:,.0f}")), ("load_seconds", "load (s)", _num("{:.2f}")),
                     ("load_gib_per_s", "load GiB/s", _num("{:.2f}")),
                     ("load_transitions_per_s", "load transitions/s", _num("{:,.0f}")),
                     ("zarr_batches_per_s", "batches/s from zarr", _num("{:,.2f}")),
                     ("memory_batches_per_s", "batches/s from memory", _num("{:,.0f}")),
                     ("memory_over_zarr", "memory / zarr", _num("{:,.0f}x"))],
}


def _cell(value: Any, fmt: Callable[[Any], str]) -> str:
    if value is None:
        return "n/a"
    try:
        return fmt(value)
    except (TypeError, ValueError):
        return str(value)


def figure_table(result: dict) -> str:
    """One figure's result (a parsed JSON file) as a markdown table with its goal, device and revision."""
    name = result.get("figure", "?")
    rows = result.get("rows", [])
    columns = COLUMNS.get(name) or [(k, k, lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
                                    for k in dict.fromkeys(k for r in rows for k in r)]
    lines = [f"### {TITLES.get(name, name)} ({result.get('device', '?')}{', quick' if result.get('quick') else ''})",
             "", "| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    if name == "world_model_pareto" and "detail" in result:  # the equal-accuracy comparisons under the rows
        lines += [""] + _sibling("world_model_pareto").table({"rows": [], "comparisons": result["detail"][
            "comparisons"]}).splitlines()[3:]
    summary = result.get("summary", {})
    goal, met = summary.get("goal"), summary.get("met")
    verdict = "no goal set (reported only)" if goal is None else \
        f"goal {goal}: **{'met' if met else 'not met'}**"
    lines += ["", f"{verdict}. {summary.get('headline', '')}".rstrip()]
    m = result.get("machine", {})
    where = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('torch_threads', '?')} torch threads"
    if m.get("gpu"):
        where = f"{m['gpu']}; {where}"
    lines.append(f"Device {result.get('device', '?')} ({where}), torch {m.get('torch', '?')}, "
                 f"git {result.get('git_revision', '?')}, {'quick' if result.get('quick') else 'full'} run, "
                 f"{result.get('wall_seconds', float('nan')):.0f} s, finished {result.get('finished', '?')}.")
    return "\n".join(lines)


def tables(results_dir: Path) -> str:
    """Markdown tables of every figure file under ``results_dir`` (any device folder), figures in order."""
    found = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(result, dict) and "figure" in result and "rows" in result:
            found.append(result)
    order = {name: i for i, name in enumerate(FIGURES)}
    found.sort(key=lambda r: (order.get(r["figure"], len(order)), r["figure"], str(r.get("device"))))
    if not found:
        return f"(no engineering results under {results_dir})"
    return "\n\n".join(figure_table(r) for r in found)


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes on 2 CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA is synchronised around timings)")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES), metavar="FIGURE",
                        help=f"figures to run, of {', '.join(FIGURES)}")
    parser.add_argument("--force", action="store_true", help="measure figures whose result file exists again")
    parser.add_argument("--tables", action="store_true", help="print the tables of existing results and exit")
    parser.add_argument("--results_dir", type=Path, default=None,
                        help="default: benchmarks/results/engineering (--quick: benchmarks/results/quick/engineering)")
    parser.add_argument("--mpe_dataset", default=MPE)
    parser.add_argument("--smax_dataset", default=SMAX)
    parser.add_argument("--batch_size", type=int, default=256, help="sampler, world-model and I/O batches")
    parser.add_argument("--horizon", type=int, default=15, help="world-model rollout length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed_baseline", default="f65237c",
                        help="update_speed: the revision to compare with (checked out with git worktree)")
    args = parser.parse_args(argv)
    results = args.results_dir or (RESULTS / "quick" / "engineering" if args.quick else RESULTS / "engineering")
    if args.tables:
        print(tables(results))
        return 0

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        if device.index is None:  # Lightning's devices=1 is the first GPU: time the bare side on the same one
            device = torch.device("cuda", 0)
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import: quiet them after it)

    for name in ("lightning.pytorch", "lightning.fabric"):  # "Seed set", "GPU available", tips
        logging.getLogger(name).setLevel(logging.WARNING)
    # this script's own arguments are in sys.argv while it hands LogoCLI its args
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    failed = []
    begin = time.perf_counter()
    for name in FIGURES:
        if name not in args.only:
            continue
        out = results / device.type / f"{name}.json"
        if out.exists() and not args.force:
            print(f"{name}: done ({out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}); --force to rerun")
            continue
        print(f"{name}: measuring ...", flush=True)
        try:
            result = run_figure(name, args.quick, device, args, out)
        except Exception:  # the other figures still run; this one stays to do
            traceback.print_exc()
            failed.append(name)
            continue
        print(figure_table(result) + "\n", flush=True)
    print(f"{time.perf_counter() - begin:.0f} s in all" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
