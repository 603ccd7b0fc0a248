"""What bounds LOGO's cost against the ensemble: floating-point operations per training step and per rollout
transition, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, the ops that take 69% of a
LOGO step in the profile; elementwise ops are not counted), next to the measured time ratios.

For each dataset the default LOGO, the direct model and the 7-member ensemble (``benchmarks/world_model.py``'s
``MODELS``, untrained: the count does not depend on the weights) run, on identical inputs:

* one training step's forward and backward on a batch of ``--batch_size`` (``_parts`` + ``loss.backward()``);
* one H-step rollout from ``--rollout_batch`` held-out starts under a uniform random policy (``rollout``), divided
  by the row-steps it computed (batch x H: the batched rollout runs every row every step, ended ones included, so
  this is the work per step of one row whatever the untrained termination heads predict; the transitions it kept
  are reported too).

A model whose FLOPs per step (or per transition) are ``r`` times the ensemble's can be faster than it by more than
``1/r`` only where it uses the hardware better, so the FLOP ratio is the floor of the time ratio at equal
efficiency: the issue's goals (LOGO's step <= 0.5x the ensemble's, its rollout rate >= 3x) need FLOP ratios below
0.5x and 0.33x. The result goes to ``benchmarks/results/speed/wm_flops.json`` (atomic) and a table is printed.

    OMP_NUM_THREADS=1 python benchmarks/wm_flops.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import world_model as wm  # noqa: E402  (MODELS and timing_inputs: the cost figures' models and inputs)
from logo import provenance  # noqa: E402
from logo.data import OfflineMARLDataModule  # noqa: E402
from logo.dims import linked_dims  # noqa: E402
from logo.world_model import rollout  # noqa: E402
from logo.world_model.model_rollout import UniformPolicy  # noqa: E402


def count(fn) -> int:
    """FLOPs of ``fn()`` (matrix products and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def measure(path: str, batch_size: int, rollout_batch: int, horizon: int, seed: int) -> list[dict]:
    dm = OfflineMARLDataModule(path, batch_size=batch_size, seed=seed)
    dm.setup("fit")
    obs_mask = torch.from_numpy(dm.dataset.arrays["obs_mask"])
    batch, start = wm.timing_inputs(dm, batch_size, rollout_batch, seed)
    rows = []
    for name, (cls, kwargs) in wm.MODELS.items():
        torch.manual_seed(seed)
        model = cls(**linked_dims(dm), **kwargs)
        model.set_statistics(dm.statistics, obs_mask)

        def step(model=model):
            model.train()
            _, _, parts = model._parts(batch)
            parts["loss"].backward()

        step_flops = count(step)
        model.eval()
        gen = torch.Generator().manual_seed(0)
        policy = UniformPolicy(model.n_agents, model.action_size, model.discrete, model.action_low,
                               model.action_high, gen)
        played = []

        def play(model=model, policy=policy, gen=gen, played=played):
            with torch.no_grad():
                played.append(rollout(model, policy, start, horizon, generator=gen))

        rollout_flops = count(play)
        transitions = int(played[0].alive.sum())
        row_steps = rollout_batch * horizon
        rows.append({"dataset": f"{dm.spec.env_family}/{dm.spec.scenario} {Path(path).stem}", "model": name,
                     "params": sum(p.numel() for p in model.parameters()),
                     "step_gflop": step_flops / 1e9, "rollout_mflop_per_row_step": rollout_flops / row_steps / 1e6,
                     "rollout_row_steps": row_steps, "rollout_transitions_kept": transitions})
    for row in rows:
        ref = next(r for r in rows if r["dataset"] == row["dataset"] and r["model"] == "ensemble-7")
        row["step_flop_ratio"] = row["step_gflop"] / ref["step_gflop"]
        row["rollout_flop_ratio"] = row["rollout_mflop_per_row_step"] / ref["rollout_mflop_per_row_step"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+",
                        default=["data/mpe/simple_spread_v3/medium.zarr", "data/smax/3m/medium.zarr"])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--rollout_batch", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed" / "wm_flops.json"))
    opts = parser.parse_args(argv)
    for path in opts.datasets:
        if not Path(path).exists():
            parser.error(f"--datasets: {path} does not exist (collect it first: docs/environments.md)")
    rows = [row for path in opts.datasets
            for row in measure(path, opts.batch_size, opts.rollout_batch, opts.horizon, opts.seed)]
    result = {"rows": rows, "batch_size": opts.batch_size, "rollout_batch": opts.rollout_batch,
              "horizon": opts.horizon, "seed": opts.seed, "counter": "torch.utils.flop_counter.FlopCounterMode",
              "revision": provenance.git_revision(), "machine": provenance.machine()}
    provenance.write_json(Path(opts.out), result)
    print("| dataset | model | params | train step GFLOP | x ensemble | rollout MFLOP per row-step | x ensemble |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['params'] / 1e6:.2f}M | {r['step_gflop']:.3f} | "
              f"{r['step_flop_ratio']:.2f}x | {r['rollout_mflop_per_row_step']:.3f} | "
              f"{r['rollout_flop_ratio']:.2f}x |")
    print(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
