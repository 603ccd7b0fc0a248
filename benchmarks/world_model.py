"""LOGO vs the direct joint model vs an ensemble of 7: accuracy, uncertainty quality and cost, side by side.

For every dataset, each model is trained with the same Lightning Trainer, data module, seed
and update budget, then evaluated on the same held-out episodes:

* 1-step next-state MSE and 15-step open-loop next-state MSE (standardised units, along the
  dataset's own actions), reward MSE (standardised);
* Spearman correlation between the model's u and its true next-state error;
* parameters, training step time (identical batches, the models interleaved round-robin so
  they share the machine's noise) and rollout transitions/s (H=15, uniform random policy).

``LOGO-small`` is LOGO with hidden widths 128 and latents of 64 (the direct model matches the
default LOGO's parameter count). Ratios are to the ensemble. Results go to a JSON file and a markdown table on stdout.

    python benchmarks/world_model.py                      # the table in docs/world_model.md
    python benchmarks/world_model.py --steps 200 --datasets data/smax/3m/medium.zarr   # quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything

from logo.callbacks import WorldModelDiagnostics
from logo.data import OfflineMARLDataModule
from logo.data.reader import gather_transitions
from logo.dims import linked_dims
from logo.world_model import DirectWorldModel, EnsembleWorldModel, LogoWorldModel, rollout
from logo.world_model.model_rollout import UniformPolicy

warnings.filterwarnings("ignore")

DATASETS = ["data/mpe/simple_spread_v3/medium.zarr", "data/smax/5m_vs_6m/medium.zarr",
            "data/mamujoco/HalfCheetah-2x3/medium.zarr"]
MODELS = {"LOGO": (LogoWorldModel, {}),
          "LOGO-small": (LogoWorldModel, {"hidden_sizes": [128, 128], "latent_dim": 64}),
          "direct": (DirectWorldModel, {}),
          "ensemble-7": (EnsembleWorldModel, {"ensemble_size": 7, "elites": 5})}


def train(cls, kwargs: dict, path: str, steps: int, batch_size: int, seed: int,
          device: torch.device = torch.device("cpu")):
    seed_everything(seed, verbose=False)
    dm = OfflineMARLDataModule(path, batch_size=batch_size, steps_per_epoch=steps, val_fraction=0.1, seed=seed)
    model = cls(**linked_dims(dm), **kwargs)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, devices=1,
                      accelerator="gpu" if device.type == "cuda" else "cpu",
                      callbacks=[WorldModelDiagnostics()])  # val/open_loop_mse_k*
    begin = time.perf_counter()
    trainer.fit(model, dm)
    fit_seconds = time.perf_counter() - begin
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return model, dm, metrics, fit_seconds


def _sync(model: torch.nn.Module) -> torch.device:
    """Wait for the model's device (CUDA runs asynchronously) so wall-clock timings are the work's; returns it."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return device


def timing_inputs(dm: OfflineMARLDataModule, batch_size: int, rollout_batch: int, seed: int,
                  device: torch.device = torch.device("cpu")) -> tuple[dict, dict]:
    """The same inputs for every model: a training batch (from ``seed``) and rollout starts from held-out
    episodes, gathered on ``device``."""
    storage = dm.storage_on(device)
    gen = torch.Generator().manual_seed(seed)
    batch = gather_transitions(storage, dm.train_indices[torch.randint(
        len(dm.train_indices), (batch_size,), generator=gen)].to(device))
    start = gather_transitions(storage, dm.val_indices[torch.randint(
        len(dm.val_indices), (rollout_batch,), generator=gen)].to(device))
    return batch, start


def step_times(models: dict, batch: dict, rounds: int, steps: int, clock=time.perf_counter) -> dict[str, float]:
    """Median seconds per optimiser step of each model on the same batch, models interleaved round-robin.

    ``clock``: wall time by default; ``time.process_time`` (this process's CPU seconds) measures the work alone
    on shared CPU cores, where other jobs stretch wall time (CPU only: it does not see a GPU's work)."""
    optims = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds + 1):  # the first round warms up
        for name, model in models.items():
            model.train()
            _sync(model)
            begin = clock()
            for _ in range(steps):
                _, _, parts = model._parts(batch)
                optims[name].zero_grad()
                parts["loss"].backward()
                optims[name].step()
            _sync(model)
            times[name].append((clock() - begin) / steps)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def rollout_rates(models: dict, start: dict, horizon: int, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Median model transitions per second of H-step rollouts from ``start`` under a uniform policy, interleaved
    (``clock`` as in :func:`step_times`)."""
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            model.eval()
            gen = torch.Generator(device=_sync(model)).manual_seed(0)
            policy = UniformPolicy(model.n_agents, model.action_size, model.discrete, model.action_low,
                                   model.action_high, gen)
            begin = clock()
            result = rollout(model, policy, start, horizon, generator=gen)
            rates[name].append(result.alive.sum().item() / (clock() - begin))  # .item() waits
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--steps", type=int, default=3000, help="training updates per model")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rollout_batch", type=int, default=1024)
    parser.add_argument("--out", default="benchmarks/results/world_model.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = []
    for path in args.datasets:
        trained, fits = {}, {}
        for name, (cls, kwargs) in MODELS.items():
            model, dm, metrics, seconds = train(cls, kwargs, path, args.steps, args.batch_size, args.seed)
            trained[name] = model
            fits[name] = (metrics, seconds)
            print(f"{path} {name}: trained {args.steps} steps in {seconds:.0f} s", flush=True)
        batch, start = timing_inputs(dm, args.batch_size, args.rollout_batch, args.seed)
        times = step_times(trained, batch, rounds=5, steps=20)
        rates = rollout_rates(trained, start, horizon=15, repeats=3)
        for name, model in trained.items():
            metrics, seconds = fits[name]
            results.append({
                "dataset": path, "model": name, "steps": args.steps, "seed": args.seed,
                "params": sum(p.numel() for p in model.parameters()),
                "mse_state_1": metrics.get("val/mse_state"), "mse_state_15": metrics.get("val/open_loop_mse_k15"),
                "mse_obs_1": metrics.get("val/mse_obs"), "mse_reward": metrics.get("val/mse_reward"),
                "spearman_u": metrics.get("val/spearman_u_error"), "step_ms": 1000 * times[name],
                "rollout_per_s": rates[name], "fit_seconds": seconds, "revision": revision,
            })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()}, "
                                          f"{torch.get_num_threads()} torch threads", "results": results}, indent=1))
    print_table(results)


def print_table(results: list[dict]) -> None:
    print("| dataset | model | params | 1-step state MSE | 15-step state MSE | reward MSE | Spearman(u, error) "
          "| train step ms (x ensemble) | rollout transitions/s (x ensemble) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ref = next(x for x in results if x["dataset"] == r["dataset"] and x["model"] == "ensemble-7")
        name = "/".join(Path(r["dataset"]).parts[1:3]) + " " + Path(r["dataset"]).stem

        def fmt(x):
            return "n/a" if x is None else f"{x:.3f}"
        print(f"| {name} | {r['model']} | {r['params'] / 1e6:.2f}M | {fmt(r['mse_state_1'])} | "
              f"{fmt(r['mse_state_15'])} | {fmt(r['mse_reward'])} | {fmt(r['spearman_u'])} | "
              f"{r['step_ms']:.1f} ({r['step_ms'] / ref['step_ms']:.2f}x) | "
              f"{r['rollout_per_s']:.0f} ({r['rollout_per_s'] / ref['rollout_per_s']:.2f}x) |")


if __name__ == "__main__":
    main()
