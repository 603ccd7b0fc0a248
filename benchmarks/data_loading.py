"""Dataset I/O: write rate, zarr -> memory load rate, and minibatch sampling from disk vs memory.

Prints a markdown table; everything is measured side by side in one run. Example:

    python benchmarks/data_loading.py --transitions 1000000
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from logo.data import DatasetSpec, DatasetWriter, OfflineDataset, gather_transitions

# MPE simple_spread-sized dims: 3 agents, 18 obs features each, 5 discrete actions
N_AGENTS, OBS_DIM, N_ACTIONS, EPISODE = 3, 18, 5, 25


def write(path: Path, transitions: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    spec = DatasetSpec(env_family="benchmark", scenario="random", n_agents=N_AGENTS, obs_dim=OBS_DIM,
                       state_dim=N_AGENTS * OBS_DIM, action_kind="discrete", n_actions=N_ACTIONS)
    block = {  # one episode's worth of random data, reused with a per-episode offset
        "observations": rng.normal(size=(EPISODE, N_AGENTS, OBS_DIM)).astype(np.float32),
        "state": rng.normal(size=(EPISODE, N_AGENTS * OBS_DIM)).astype(np.float32),
        "actions": rng.integers(0, N_ACTIONS, (EPISODE, N_AGENTS)),
        "rewards": rng.normal(size=EPISODE).astype(np.float32),
        "avail_actions": np.ones((EPISODE, N_AGENTS, N_ACTIONS), bool),
    }
    start = time.perf_counter()
    with DatasetWriter(path, spec=spec) as writer:
        for e in range(transitions // EPISODE):
            writer.add_episode(observations=block["observations"] + e, state=block["state"] + e,
                               actions=block["actions"], rewards=block["rewards"], terminated=e % 2 == 0,
                               final_observation=block["observations"][0], final_state=block["state"][0],
                               avail_actions=block["avail_actions"], final_avail_actions=block["avail_actions"][0])
    return time.perf_counter() - start


def measure(path: Path, batch_size: int, disk_batches: int, memory_batches: int,
            device: torch.device | str = "cpu") -> dict[str, float]:
    """Load the dataset at ``path`` into memory (timed) and time random batches from zarr and from memory.

    Memory batches are gathered from the dataset's tensors on ``device``, as the data module does
    (CUDA is synchronised around the timing). Sizes are in bytes, times in seconds, rates per second.
    """
    device = torch.device(device)
    nbytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    start = time.perf_counter()
    data = OfflineDataset.load(path)
    t_load = time.perf_counter() - start
    mem = sum(a.nbytes for a in data.arrays.values())
    storage = {k: v.to(device) for k, v in data.storage().items()}
    n = data.n_transitions
    rng = np.random.default_rng(0)

    group = zarr.open_group(str(path), mode="r")
    keys = ["observations", "state", "actions", "rewards", "terminals", "avail_actions"]
    start = time.perf_counter()
    for _ in range(disk_batches):  # the same arrays, each step's row, read straight from disk
        idx = np.sort(rng.integers(0, n, batch_size))
        for key in keys:
            group[key].oindex[idx]
    disk_rate = disk_batches / (time.perf_counter() - start)

    generator = torch.Generator(device=device).manual_seed(0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(memory_batches):
        gather_transitions(storage, torch.randint(n, (batch_size,), generator=generator, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    memory_rate = memory_batches / (time.perf_counter() - start)
    return {"transitions": n, "load_seconds": t_load, "disk_bytes": nbytes, "memory_bytes": mem,
            "zarr_batches_per_s": disk_rate, "memory_batches_per_s": memory_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--disk_batches", type=int, default=5, help="random batches read straight from zarr")
    parser.add_argument("--memory_batches", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    try:
        path = tmp / "bench.zarr"
        t_write = write(path, args.transitions)
        m = measure(path, args.batch_size, args.disk_batches, args.memory_batches)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n, t_load, mem = m["transitions"], m["load_seconds"], m["memory_bytes"]
    disk_rate, memory_rate = m["zarr_batches_per_s"], m["memory_batches_per_s"]

    print(f"transitions={n}, batch_size={args.batch_size}, {platform.processor() or platform.machine()}, "
          f"torch threads=1\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| write (DatasetWriter, zstd, validated) | {n / t_write:,.0f} transitions/s ({t_write:.1f} s) |")
    print(f"| size on disk / in memory | {m['disk_bytes'] / 2**20:,.0f} MiB / {mem / 2**20:,.0f} MiB |")
    print(f"| load + validate (zarr -> memory) | {mem / 2**30 / t_load:.2f} GiB/s ({t_load:.1f} s) |")
    print(f"| random batches straight from zarr | {disk_rate:,.2f} batches/s |")
    print(f"| random batches from memory (gather_transitions, with next obs) | {memory_rate:,.0f} batches/s |")
    print(f"| memory / zarr ratio | {memory_rate / disk_rate:,.0f}x |")


if __name__ == "__main__":
    main()
