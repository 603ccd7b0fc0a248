"""A two-stage fit on one device, timed: the LOGO world model, then LOGO+MACQL rolling out in it.

Both stages are ordinary ``logo fit`` runs of the MPE configs (``LogoCLI``), with the accelerator set to
``--device`` and short budgets; a timing callback measures the updates/s of each stage after a warm-up,
and the policy stage's rollout rounds report their model transitions/s (``synthetic/rollout_transitions_per_s``
from ``ModelRollouts``). The result goes to ``<out>/two_stage.json`` (atomic); one markdown table is printed.

    python benchmarks/two_stage.py --device cuda --out benchmarks/results/device_check/cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from logo import provenance

ROOT = Path(__file__).resolve().parents[1]
MPE = "data/mpe/simple_spread_v3/medium.zarr"


class StepClock(Callback):
    """Seconds from the end of training step ``warmup`` to the end of the last one; rollout-round rates."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.device = warmup, device
        self.start = self.end = None
        self.steps = 0
        self.rollout_rates: list[float] = []

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps = trainer.global_step
        if self.steps == self.warmup:
            self._sync()
            self.start = time.perf_counter()
        source = getattr(trainer.datamodule, "synthetic", None)
        stats = getattr(source, "stats", None)
        if stats and getattr(source, "last_round", None) == trainer.global_step - 1:
            self.rollout_rates.append(stats["rollout_transitions_per_s"])

    def on_train_end(self, trainer, pl_module):
        self._sync()
        self.end = time.perf_counter()

    def updates_per_s(self) -> float:
        return (self.steps - self.warmup) / (self.end - self.start)


def fit(args: list[str], warmup: int, device: str) -> tuple[StepClock, object]:
    from logo.cli import LogoCLI

    clock = StepClock(warmup, device)
    cli = LogoCLI(args=["fit", *args, "--trainer.accelerator", "gpu" if device == "cuda" else "cpu",
                        "--trainer.devices=1", "--trainer.enable_progress_bar=false"],
                  save_config_callback=None, trainer_defaults={"callbacks": [clock]})
    return clock, cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--dataset", default=MPE)
    parser.add_argument("--world_model_steps", type=int, default=600)
    parser.add_argument("--policy_steps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder (default benchmarks/results/device_check/<device>)")
    opts = parser.parse_args(argv)
    if not Path(opts.dataset).exists():
        parser.error(f"--dataset: {opts.dataset} does not exist (logo collect --config "
                     "configs/collect/mpe_simple_spread_v3_medium.yaml)")
    out = opts.out or ROOT / "benchmarks" / "results" / "device_check" / opts.device
    root = Path(tempfile.mkdtemp())
    common = ["--data.init_args.path", opts.dataset, "--trainer.logger=false", "--trainer.max_epochs=-1",
              "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0"]
    wm_clock, _ = fit(["--config", "configs/mpe/simple_spread_v3/world_model.yaml", *common,
                       "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
                       "init_args: {save_last: true}}]",
                       "--trainer.max_steps", str(opts.world_model_steps), "--trainer.default_root_dir", str(root)],
                      opts.warmup, opts.device)
    checkpoint = next(root.rglob("last.ckpt"))
    policy_clock, _ = fit(["--config", "configs/mpe/simple_spread_v3/policy.yaml", *common,
                           "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
                           "--data.init_args.synthetic.init_args.world_model", str(checkpoint),
                           "--trainer.max_steps", str(opts.policy_steps),
                           "--trainer.default_root_dir", str(root / "policy")], opts.warmup, opts.device)
    result = {"device": opts.device, "dataset": opts.dataset, "revision": provenance.git_revision(),
              "machine": provenance.machine(torch.device(opts.device)),
              "world_model": {"steps": opts.world_model_steps, "warmup": opts.warmup,
                              "updates_per_s": wm_clock.updates_per_s()},
              "policy": {"steps": opts.policy_steps, "warmup": opts.warmup,
                         "updates_per_s": policy_clock.updates_per_s(),
                         "rollout_rounds": len(policy_clock.rollout_rates),
                         "rollout_transitions_per_s": statistics.median(policy_clock.rollout_rates)}}
    provenance.write_json(out / "two_stage.json", result)
    print("| device | world model updates/s | LOGO+MACQL updates/s | rollout transitions/s (median of rounds) |")
    print("|---|---|---|---|")
    print(f"| {opts.device} | {result['world_model']['updates_per_s']:.1f} | {result['policy']['updates_per_s']:.1f} | "
          f"{result['policy']['rollout_transitions_per_s']:,.0f} |")
    print(f"written to {out / 'two_stage.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
