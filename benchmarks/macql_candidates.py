"""Issue 17's remaining DiscreteMACQL speed candidates, each timed against the code it replaces, in one process.

``torch.utils.benchmark`` (``blocked_autorange``) times each side; the sides alternate ``--repeats`` times
(old, new, old, new, ...) and the median of each side's medians is reported, so a load that drifts during the
run is shared by both. The model and batch are those of ``benchmarks/update_profile.py`` (the MPE policy config
on real data, batch 256). The candidates:

1. ``stacked_pass``: the online agent network's two passes (with gradient on obs; without, on next obs, the
   double-Q chooser) against one pass over both stacked on the batch axis, forward and backward (logo keeps
   the two passes: the stacked pass's backward also runs over the next-obs half).
2. ``cql_sampler``: the sampled CQL joint actions (``sample_legal_joint_actions``), drawn by a legal argmax
   of a [B, K, N, A] score tensor (the code before 91c9285, below as ``score_argmax_sampler``) against logo's
   one draw per (row, sample, agent); alone, and inside a whole update (``update_profile.update_fn``), where
   the old sampler is patched into ``logo.policy.macql`` for the old side.
3. ``conservative_term``: the CQL term's synthetic-row handling on a real-only batch with its
   ``bool(synthetic.any())`` shortcut (``conservative_term_with_sync`` below, the code before 908fdb1)
   against logo's, which never reads a value back; a sync is nearly free on a CPU, so run it with
   ``--device cuda`` for the point of it.

    OMP_NUM_THREADS=1 python benchmarks/macql_candidates.py
    python benchmarks/macql_candidates.py --device cuda

Results go to ``benchmarks/results/speed/candidates_<device>.json`` (atomic); a markdown table is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parent))
from update_profile import MODELS, ROOT, build, update_fn  # noqa: E402

from logo import provenance  # noqa: E402
from logo.policy import macql  # noqa: E402
from logo.policy.offline import OfflinePolicy  # noqa: E402


def score_argmax_sampler(avail: torch.Tensor | None, shape: tuple[int, ...], samples: int,
                         generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """The sampler before 91c9285: a uniform score per (row, sample, agent, action), legal ones lifted by 1,
    argmax. [B, K, N] int64."""
    b, n, a = shape
    device = avail.device if avail is not None else device
    scores = torch.rand((b, samples, n, a), generator=generator, device=device)
    if avail is not None:
        scores = scores + avail.unsqueeze(1).to(scores.dtype)
    return scores.argmax(-1)


def conservative_term_with_sync(penalty, q_data, batch, synthetic_mode):
    """``OfflinePolicy.conservative_term`` before 908fdb1 (push_down and full only): a real-only batch returns
    early after reading ``synthetic.any()`` back to the host."""
    weights, synthetic = batch.get("weights"), batch.get("synthetic")
    if synthetic is None or synthetic_mode == "full" or not bool(synthetic.any()):
        return penalty, weights
    return torch.where(synthetic, penalty + q_data, penalty), weights


def timed(fn: Callable[[], object], device: torch.device, min_run_time: float) -> float:
    """Median seconds per call of ``fn`` (synchronising the device around each block)."""
    def call() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return benchmark.Timer("call()", globals={"call": call}).blocked_autorange(min_run_time=min_run_time).median


def pairs(model, dm, clip, device: torch.device) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """name -> (old, new): the timed pairs."""
    from logo.data.reader import gather_transitions

    generator = torch.Generator(device=device).manual_seed(0)
    picked = dm.train_indices.to(device)[torch.randint(len(dm.train_indices), (dm.batch_size,), generator=generator,
                                                       device=device)]
    batch = gather_transitions(dm.storage_on(device), picked)
    obs, next_obs, b = batch["obs"], batch["next_obs"], len(picked)
    avail = batch.get("avail_actions")
    if avail is None:  # MPE has no action masks: time the masked path on a mask like SMAX's (about 3/4 legal)
        avail = torch.rand((b, model.n_agents, model.action_size), generator=generator, device=device) < 0.75
        avail[..., 0] = True
    shape = (b, model.n_agents, model.action_size)

    def two_passes() -> None:
        q = model.q_values(obs)  # [B, N, A]
        with torch.no_grad():
            model.q_values(next_obs), model.q_values(next_obs, target=True)
        q.sum().backward()

    def stacked_pass() -> None:
        q = model.q_values(torch.cat([obs, next_obs]))[:b]  # [B, N, A]; the next-obs half is the chooser
        with torch.no_grad():
            model.q_values(next_obs, target=True)
        q.sum().backward()

    real = {"weights": torch.ones(b, device=device), "synthetic": torch.zeros(b, dtype=torch.bool, device=device)}
    penalty, q_data = torch.randn(b, device=device), torch.randn(b, device=device)
    update = update_fn(model, dm, clip, device)
    logo_sampler = macql.sample_legal_joint_actions

    def update_with(sampler) -> Callable[[], None]:
        def run() -> None:
            macql.sample_legal_joint_actions = sampler
            try:
                update()
            finally:
                macql.sample_legal_joint_actions = logo_sampler
        return run

    return {
        "stacked_pass (agent network fwd+bwd)": (two_passes, stacked_pass),
        "cql_sampler (B=256, K=32, N=3, A=5)": (lambda: score_argmax_sampler(avail, shape, 32, generator),
                                              lambda: logo_sampler(avail, shape, 32, generator)),
        "cql_sampler (whole update)": (update_with(score_argmax_sampler), update_with(logo_sampler)),
        "conservative_term (real-only batch)": (
            lambda: conservative_term_with_sync(penalty, q_data, real, "push_down"),
            lambda: OfflinePolicy.conservative_term(penalty, q_data, real, "push_down")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the two sides")
    parser.add_argument("--min_run_time", type=float, default=2.0, help="seconds per blocked_autorange")
    parser.add_argument("--dataset", default=None, help="a discrete dataset (default: the MPE medium one)")
    parser.add_argument("--only", nargs="*", default=None, help="name prefixes of the pairs to time")
    parser.add_argument("--out", default=None,
                        help="result file (default benchmarks/results/speed/candidates_<device>.json)")
    opts = parser.parse_args(argv)
    device = torch.device(opts.device)
    model, dm, clip = build("macql_discrete", opts.dataset or str(ROOT / MODELS["macql_discrete"][1]), device)
    rows = {}
    for name, (old, new) in pairs(model, dm, clip, device).items():
        if opts.only and not any(name.startswith(prefix) for prefix in opts.only):
            continue
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(opts.repeats):
            for side, fn in (("old", old), ("new", new)):
                times[side].append(timed(fn, device, opts.min_run_time))
        med = {side: statistics.median(t) for side, t in times.items()}
        rows[name] = {"seconds": times, "median": med, "new_over_old_speed": med["old"] / med["new"]}
    result = {"device": opts.device, "dataset": opts.dataset or MODELS["macql_discrete"][1],
              "revision": provenance.git_revision(), "repeats": opts.repeats,
              "min_run_time": opts.min_run_time, "threads": torch.get_num_threads(), "pairs": rows,
              "machine": provenance.machine()}
    out = Path(opts.out) if opts.out else ROOT / "benchmarks" / "results" / "speed" / f"candidates_{opts.device}.json"
    provenance.write_json(out, result)
    print(f"| candidate | old (median of {opts.repeats}) | new | speed new / old |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        old, new = (1e3 * row["median"][side] for side in ("old", "new"))
        print(f"| {name} | {old:.3f} ms | {new:.3f} ms | {row['new_over_old_speed']:.2f}x |")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
