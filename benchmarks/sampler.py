"""Cost of LOGO's uncertainty-weighted sampling next to the policy update it feeds.

For synthetic buffers of 1e4..1e6 transitions (MPE simple_spread shapes: 3 agents, 18 observation
features, 54 state features, 5 actions) it times, side by side in one run:

* rebuilding the sampler after a rollout round (weights + cumulative sum over the buffer),
* drawing the synthetic half of a batch (searchsorted + gather), for weighted and uniform draws,
* one DiscreteMACQL update on a full batch (forward, backward, Adam step),

and prints each draw's share of (draw + update). Run: ``python benchmarks/sampler.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from logo.policy.macql import DiscreteMACQL
from logo.synthetic import SamplingOptions, SyntheticBuffer

N, OBS, STATE, ACTIONS = 3, 18, 54, 5


def fake_transitions(m: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def rand(*shape):
        return torch.randn(*shape, generator=generator, device=device)
    return {"obs": rand(m, N, OBS), "state": rand(m, STATE), "next_obs": rand(m, N, OBS), "next_state": rand(m, STATE),
            "actions": torch.randint(ACTIONS, (m, N), generator=generator, device=device),
            "rewards": rand(m), "terminals": torch.zeros(m, device=device),
            "truncations": torch.zeros(m, device=device),
            "avail_actions": torch.ones(m, N, ACTIONS, dtype=torch.bool, device=device),
            "next_avail_actions": torch.ones(m, N, ACTIONS, dtype=torch.bool, device=device),
            "uncertainty": rand(m).abs()}


def timed(fn, repeats: int, device: torch.device) -> float:
    """Mean seconds per call (after one warm-up call), synchronising CUDA."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def policy_update(batch_size: int, device: torch.device, generator: torch.Generator) -> Callable[[], None]:
    """One DiscreteMACQL update (forward, backward, Adam step) on a fixed batch of fake transitions, as a call."""
    model = DiscreteMACQL(N, OBS, STATE, "discrete", ACTIONS).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    batch = fake_transitions(batch_size, device, generator)

    def update() -> None:
        parts = model.losses(batch)
        loss = parts["td"].mean() + parts["cql"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)
    half = args.batch_size // 2

    update_s = timed(policy_update(args.batch_size, device, generator), args.repeats, device)
    print(f"device {device}, batch {args.batch_size} (synthetic half {half}), DiscreteMACQL update "
          f"{update_s * 1e3:.2f} ms")
    print("| buffer | mode | rebuild after a round (ms) | draw (ms) | draw share of draw + update |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        data = fake_transitions(size, device, generator)
        for mode in ("weighted", "uniform"):
            buf = SyntheticBuffer(size, SamplingOptions(mode), generator=generator)
            buf.add(data)

            rebuild_s = timed(buf.refresh, 5, device)
            buf.sample(1)
            draw_s = timed(lambda b=buf: b.sample(half), args.repeats, device)
            share = draw_s / (draw_s + update_s)
            print(f"| {size:,} | {mode} | {rebuild_s * 1e3:.2f} | {draw_s * 1e3:.3f} | {share:.1%} |")


if __name__ == "__main__":
    main()
