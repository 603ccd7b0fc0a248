"""What parts of a LOGO world-model training step cost, measured side by side (issue 17's LOGO items).

On one identical batch, with the models interleaved round-robin (``world_model.py``'s ``step_times``:
forward, loss, backward and Adam; this process's CPU time, as the cores are shared), three variants of the
same initial LOGO model:

* ``LOGO``: the model as shipped (one deductive pass over the true and predicted next observations
  stacked along the batch; both reconstruction heads run every step);
* ``no reconstruction``: ``reconstruction_weight=0``, whose two reconstruction heads are then not run
  (a different training objective: what the heads cost, not a free saving);
* ``shared first layer``: the predictive encoder's first layer split into its per-agent columns
  (observation, agent id) and the columns every agent shares (state, joint action), the shared part
  computed once per transition instead of once per agent. Same parameters and the same function up to
  float rounding; a prototype measured here, not adopted in ``LogoWorldModel``.

The agent-shared MLPs themselves are already one matrix product over all B x N agent rows
(``nn.Linear`` on ``[B, N, in]``), not a loop over agents.

    OMP_NUM_THREADS=1 python benchmarks/logo_parts.py       # MPE spread and SMAX 3m, results/speed/logo_parts_cpu.json
    OMP_NUM_THREADS=1 python benchmarks/logo_parts.py --accuracy_steps 3000 \\
        --datasets data/mpe/simple_spread_v3/medium.zarr

``--accuracy_steps``: instead of timing, train LOGO with ``reconstruction_weight=0`` as ``world_model_pareto.py``
trains its sizes (``world_model.py``'s ``train``: same data split, seed and budget) and record its held-out 1-step
and 15-step errors (``results/speed/logo_parts_accuracy_cpu.json``), to compare with the default LOGO's row there.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import time
from pathlib import Path
from types import MethodType, ModuleType

import torch
import torch.nn.functional as F

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("data/mpe/simple_spread_v3/medium.zarr", "data/smax/3m/medium.zarr")


def _sibling(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def shared_first_layer_predictive(self, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``LogoWorldModel.predictive`` (joint actions) with the encoder's shared input columns applied once per row."""
    obs, state, actions = inputs["obs"], inputs["state"], inputs["actions"]
    b, n, o = obs.shape
    first, rest = self.pred_encoder.net[0], list(self.pred_encoder.net)[1:]
    shared = torch.cat([state, actions.reshape(b, -1)], -1)  # [B, S + N*A]: the same for every agent
    k = shared.shape[-1]
    w = first.weight  # [H, O + S + N*A + N], the input order of the shipped model
    h = F.linear(obs, w[:, :o]) + F.linear(shared, w[:, o:o + k], first.bias).unsqueeze(1) + w[:, o + k:].T  # [B, N, H]
    for layer in rest:
        h = layer(h)
    mean, raw = self.pred_decoder(h).chunk(2, dim=-1)
    return h, mean, self.pred_bounds(raw)


def measure(path: str, batch_size: int, seed: int, rounds: int, steps: int) -> dict:
    from lightning.pytorch import seed_everything

    from logo.data import OfflineMARLDataModule
    from logo.dims import linked_dims
    from logo.world_model import LogoWorldModel

    wm = _sibling("world_model")
    dm = OfflineMARLDataModule(path, batch_size=batch_size, seed=seed)
    dm.setup("fit")
    seed_everything(seed, verbose=False)
    base = LogoWorldModel(**linked_dims(dm))
    base.set_statistics(dm.statistics, torch.from_numpy(dm.dataset.arrays["obs_mask"]))
    no_recon = copy.deepcopy(base)
    no_recon.hparams.reconstruction_weight = 0.0
    shared = copy.deepcopy(base)
    shared.predictive = MethodType(shared_first_layer_predictive, shared)
    models = {"LOGO": base, "no reconstruction": no_recon, "shared first layer": shared}
    batch, _ = wm.timing_inputs(dm, batch_size, 1, seed)
    with torch.no_grad():
        loss = {name: m._parts(batch)[2]["loss"].item() for name, m in models.items()}
    times = wm.step_times(models, batch, rounds=rounds, steps=steps, clock=time.process_time)  # CPU seconds
    return {"dataset": path, "dims": linked_dims(dm), "batch_size": batch_size,
            "rows": [{"variant": name, "step_ms": 1e3 * t, "ratio": t / times["LOGO"], "initial_loss": loss[name]}
                     for name, t in times.items()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per model per round")
    parser.add_argument("--accuracy_steps", type=int, default=0, help="train without reconstruction instead (updates)")
    parser.add_argument("--out", type=Path, default=None, help="default results/speed/logo_parts[_accuracy]_cpu.json")
    opts = parser.parse_args(argv)
    revision = provenance.git_revision()
    name = "logo_parts_accuracy_cpu.json" if opts.accuracy_steps else "logo_parts_cpu.json"
    opts.out = opts.out or ROOT / "benchmarks" / "results" / "speed" / name
    if opts.accuracy_steps:
        from logo.world_model import LogoWorldModel

        wm = _sibling("world_model")
        rows = []
        for path in opts.datasets:
            _, _, metrics, seconds = wm.train(LogoWorldModel, {"reconstruction_weight": 0.0}, path, opts.accuracy_steps,
                                              opts.batch_size, opts.seed)
            rows.append({"dataset": path, "variant": "no reconstruction", "steps": opts.accuracy_steps,
                         "mse_1": metrics.get("val/mse_state"), "mse_15": metrics.get("val/open_loop_mse_k15"),
                         "fit_seconds": seconds})
            print(rows[-1], flush=True)
        provenance.write_json(opts.out, {"git_revision": revision, "machine": provenance.machine(torch.device("cpu")),
                                         "rows": rows, "command": " ".join(["python", "benchmarks/logo_parts.py",
                                                                            *sys.argv[1:]])})
        return 0
    results = [measure(p, opts.batch_size, opts.seed, opts.rounds, opts.steps) for p in opts.datasets]
    provenance.write_json(opts.out, {"git_revision": revision, "machine": provenance.machine(torch.device("cpu")),
                                     "torch_threads": torch.get_num_threads(), "rounds": opts.rounds,
                                     "steps_per_round": opts.steps, "results": results,
                                     "command": " ".join(["python", "benchmarks/logo_parts.py", *sys.argv[1:]])})
    print("| dataset | variant | train step (ms, median) | x LOGO | initial loss |\n|---|---|---|---|---|")
    for r in results:
        for row in r["rows"]:
            print(f"| {r['dataset']} | {row['variant']} | {row['step_ms']:.1f} | {row['ratio']:.3f}x | "
                  f"{row['initial_loss']:.4f} |")
    print(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
