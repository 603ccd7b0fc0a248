"""Updates/s of this checkout against an earlier revision, side by side in one run (interleaved rounds).

Each round runs the same measurement in both checkouts, in fresh subprocesses (A, B, A, B, ...): a
real ``logo fit`` of the MPE policy config on real data only (``configs/sampling/none.yaml``; no logger,
checkpointing, progress bar or validation) with a timing callback, ``--steps`` updates of which the
first ``--warmup`` are not timed. The baseline is checked out with ``git worktree`` into a temporary
folder (its own code and configs; the dataset and this checkout's virtual environment are shared), so
"today's code path" is the code of that revision, not a flag in this one. The result goes to
``benchmarks/results/speed/<device>.json`` (atomic) and a markdown table is printed.

    OMP_NUM_THREADS=1 python benchmarks/speed.py --baseline f65237c             # DiscreteMACQL, CPU
    python benchmarks/speed.py --baseline f65237c --model continuous            # ContinuousMACQL (HalfCheetah)
    python benchmarks/speed.py --baseline f65237c --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"discrete": ("configs/mpe/simple_spread_v3/policy.yaml", "data/mpe/simple_spread_v3/medium.zarr"),
           "continuous": ("configs/mamujoco/HalfCheetah-2x3/policy.yaml", "data/mamujoco/HalfCheetah-2x3/medium.zarr")}

# Runs inside one checkout (its directory is the working directory and first on sys.path); prints one JSON line.
# It uses only what every revision since the CLI existed has: LogoCLI, a Lightning callback, trainer_defaults.
MEASURE = textwrap.dedent("""
    import json, sys, tempfile, time
    import torch
    from lightning.pytorch.callbacks import Callback
    from logo.cli import LogoCLI
    config, dataset, steps, warmup, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

    class Clock(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx + 1 in (warmup, steps):
                if device == "cuda":
                    torch.cuda.synchronize()
                setattr(self, "start" if batch_idx + 1 == warmup else "end", time.perf_counter())

    clock = Clock()
    LogoCLI(args=["fit", "--config", config, "--config", "configs/sampling/none.yaml",
                  "--data.init_args.path", dataset, "--data.init_args.steps_per_epoch", str(steps),
                  "--trainer.max_steps", str(steps), "--trainer.callbacks=[]", "--trainer.logger=false",
                  "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
                  "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
                  "--trainer.accelerator", "gpu" if device == "cuda" else "cpu", "--trainer.devices=1",
                  "--trainer.default_root_dir", tempfile.mkdtemp()],
            save_config_callback=None, trainer_defaults={"callbacks": [clock]})
    print(json.dumps({"updates_per_s": (steps - warmup) / (clock.end - clock.start)}))
""")


def measure(checkout: Path, config: str, dataset: str, steps: int, warmup: int, device: str) -> float:
    """Updates/s of one fresh ``logo fit`` in ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", MEASURE, config, dataset, str(steps), str(warmup), device],
                         cwd=checkout, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measurement in {checkout} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["updates_per_s"]


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``revision`` in a temporary folder, removed afterwards; a clear error where
    this checkout's git history does not hold the revision (a copy of the files without ``.git``, a shallow clone)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(f"baseline revision {revision!r}: not in this checkout's git history (the side by side "
                           "comparison checks it out with git worktree; run it in a full clone)")
    path = Path(tempfile.mkdtemp()) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare with (e.g. f65237c)")
    parser.add_argument("--model", choices=sorted(CONFIGS), default="discrete")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dataset", default=None, help="dataset path (default: the config's medium dataset)")
    parser.add_argument("--out", default=None, help="result file (default benchmarks/results/speed/<device>.json)")
    opts = parser.parse_args(argv)
    config, default_dataset = CONFIGS[opts.model]
    dataset = str(Path(opts.dataset or default_dataset).resolve())
    if not Path(dataset).exists():
        parser.error(f"--dataset: {dataset} does not exist (collect it first: see docs/environments.md)")
    rates: dict[str, list[float]] = {"baseline": [], "this checkout": []}
    with worktree(opts.baseline) as baseline:
        for _ in range(opts.rounds):
            for side, checkout in (("baseline", baseline), ("this checkout", ROOT)):
                rates[side].append(measure(checkout, config, dataset, opts.steps, opts.warmup, opts.device))
    med = {side: statistics.median(r) for side, r in rates.items()}
    speedup = med["this checkout"] / med["baseline"]
    result = {"model": opts.model, "config": config, "dataset": dataset, "baseline": opts.baseline,
              "revision": provenance.git_revision(), "steps": opts.steps, "warmup": opts.warmup,
              "rounds": opts.rounds, "device": opts.device, "updates_per_s": rates, "median": med,
              "speedup": speedup, "machine": provenance.machine()}
    out = Path(opts.out) if opts.out else ROOT / "benchmarks" / "results" / "speed" / f"{opts.device}_{opts.model}.json"
    provenance.write_json(out, result)
    print(f"| side | revision | updates/s (median of {opts.rounds}) | ms/update | x baseline |")
    print("|---|---|---|---|---|")
    for side, revision in (("baseline", opts.baseline), ("this checkout", result["revision"])):
        rate = med[side]
        print(f"| {side} | {revision} | {rate:.1f} | {1000 / rate:.2f} | {rate / med['baseline']:.2f}x |")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
