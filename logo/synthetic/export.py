"""``logo rollout``: roll a trained world model out from dataset start states and write a dataset.

The output is an ordinary logo dataset (quality ``synthetic``) with one episode per start
transition: it ends at the first predicted termination or is truncated at the horizon. A
per-step ``uncertainty`` array holds the model's u for every synthetic transition, so
``logo data info`` and the notebooks can inspect rollouts like any dataset.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from logo.data.reader import OfflineDataset, gather_transitions
from logo.data.schema import DatasetSpec
from logo.data.writer import DatasetWriter
from logo.dims import linked_dims
from logo.errors import LogoError, check_fits
from logo.world_model.base import load_world_model
from logo.world_model.model_rollout import Rollout, UniformPolicy, rollout


def write_rollouts(checkpoint: str, data: str, out: str, horizon: int = 15, starts: int = 256,
                   policy: str = "random", seed: int = 0, device: str = "cpu", overwrite: bool = False) -> dict:
    """Roll the world model in ``checkpoint`` out from ``starts`` random steps of ``data`` and write them to ``out``.

    Args:
        checkpoint: world-model checkpoint written by ``logo fit``.
        data: logo dataset whose transitions give the start states.
        out: path of the rollout dataset to write.
        horizon: model steps per rollout (H >= 1).
        starts: number of start transitions (one rollout episode each).
        policy: ``random`` (uniform over legal actions) or the path of a logo policy checkpoint.
        seed: seeds the choice of starts, the policy and the model's randomness.
        device: torch device to run on.
        overwrite: replace an existing dataset at ``out``.
    """
    if horizon < 1:
        raise LogoError(f"horizon: expected at least 1 model step, got {horizon}")
    if starts < 1:
        raise LogoError(f"starts: expected at least 1 start transition, got {starts}")
    model = load_world_model(checkpoint, map_location=device)
    dataset = OfflineDataset.load(data)
    spec = dataset.spec
    check_fits(model.hparams, linked_dims(spec), f"world model {checkpoint}", f"dataset {data}",
               ("checkpoint", "dataset"), hint="pass the dataset the world model was trained on as --data")
    generator = torch.Generator(device=device).manual_seed(seed)
    act = _policy(policy, model, device, generator)
    storage = {k: v.to(device) for k, v in dataset.storage().items()}
    index = torch.randint(dataset.n_transitions, (starts,), generator=torch.Generator().manual_seed(seed)).to(device)
    begin = time.perf_counter()
    result = rollout(model, act, gather_transitions(storage, index), horizon, generator=generator)
    seconds = time.perf_counter() - begin
    u = result.transitions()["uncertainty"].cpu().numpy()
    attrs = {"rollout": {"checkpoint": str(checkpoint), "world_model": type(model).__name__, "start_data": str(data),
                         "horizon": horizon, "starts": starts, "policy": policy, "seed": seed,
                         "uncertainty_mean": float(u.mean()), "uncertainty_p50": float(np.median(u)),
                         "uncertainty_p95": float(np.quantile(u, 0.95)),
                         "terminated_fraction": float((result.terminals * result.alive).sum() / starts),
                         "transitions_per_second": float(len(u) / seconds)}}
    out_spec = DatasetSpec(**{**spec.__dict__, "quality": "synthetic", "behaviour": policy,
                              "source": f"logo rollout of {checkpoint}"})
    with DatasetWriter(out, out_spec, overwrite=overwrite) as writer:
        writer.set_obs_mask(dataset.arrays["obs_mask"])
        _write_episodes(writer, result, spec.discrete)
        path = writer.close(extra_attrs=attrs)
    return {"path": str(path), "transitions": len(u), **attrs["rollout"]}


def _policy(policy: str, model, device: str, generator: torch.Generator):
    if policy == "random":
        return UniformPolicy(model.n_agents, model.action_size, model.discrete, model.action_low,
                             model.action_high, generator)
    from logo.dims import ACTING_DIMS
    from logo.policy.checkpoint import load_policy

    module = load_policy(policy, map_location=device)
    check_fits(module.hparams, linked_dims(model.hparams, ACTING_DIMS), f"policy {policy}", "the world model",
               ("policy", "world model"), hint="pass a policy trained on the world model's dataset, or --policy random")
    return module.act


def _write_episodes(writer: DatasetWriter, result: Rollout, discrete: bool) -> None:
    """One episode per rollout branch: its alive steps, terminated at a predicted termination."""
    cpu = {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in result.__dict__.items()}
    lengths = cpu["alive"].sum(0)  # [B]
    for b, length in enumerate(lengths):
        steps = slice(0, int(length))
        last = int(length) - 1
        writer.add_episode(
            observations=cpu["obs"][steps, b], state=cpu["state"][steps, b], actions=cpu["actions"][steps, b],
            rewards=cpu["rewards"][steps, b], final_observation=cpu["next_obs"][last, b],
            final_state=cpu["next_state"][last, b], terminated=bool(cpu["terminals"][last, b]),
            avail_actions=cpu["avail_actions"][steps, b] if discrete else None,
            final_avail_actions=cpu["next_avail_actions"][last, b] if discrete else None,
            extras={"uncertainty": cpu["uncertainty"][steps, b]})


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="logo rollout", description="Roll a trained world model out from dataset start "
                            "states and write the synthetic transitions as a logo dataset (see docs/world_model.md).")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of the options below")
    parser.add_function_arguments(write_rollouts, fail_untyped=True, skip={"overwrite"})
    parser.add_argument("--overwrite", action=ActionYesNo, default=False,
                        help="replace an existing dataset at --out (only once the new one is complete)")
    return parser


def main(args: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(args)
    summary = write_rollouts(**{k: v for k, v in cfg.items() if k != "config"})
    print(f"wrote {summary['path']}: {summary['transitions']} transitions from {summary['starts']} starts, "
          f"u mean {summary['uncertainty_mean']:.3f} (p95 {summary['uncertainty_p95']:.3f}), "
          f"{summary['terminated_fraction']:.0%} terminated, {summary['transitions_per_second']:.0f} transitions/s")
    return 0
