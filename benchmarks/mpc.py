"""MPC at decision time, measured: the policy alone against MPC around it, LOGO against another world model as the
planner's model, the planning cost per environment step, and a sweep over K and H_p.

Every row plays the same evaluation seeds in the environment of ``--data``; one row per (policy checkpoint,
planner setting), aggregated over the policy checkpoints (training seeds) as mean ± std of each seed's mean.
The JSON result (atomic) holds every per-seed number; a markdown table is printed.

    OMP_NUM_THREADS=1 python benchmarks/mpc.py --data data/smax/3m/medium.zarr \\
        --policies runs/mpc/policy/seed{0,1,2}/checkpoints/last.ckpt \\
        --world_models logo=runs/mpc/wm/logo/checkpoints/best.ckpt \\
        ensemble=runs/mpc/wm/ensemble/checkpoints/best.ckpt \\
        --out benchmarks/results/mpc/smax_3m.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from logo import provenance
from logo.data.validate import open_dataset
from logo.envs.evaluate import evaluate_policy, make_dataset_env
from logo.envs.policies import ModulePolicy
from logo.planning import MPCOptions, MPCPlanner, load_planner_model
from logo.policy.checkpoint import load_policy


def settings(models: list[str], ks: list[int], hs: list[int], default_k: int, default_h: int, base: MPCOptions,
             lambdas: list[float], variants: bool = True) -> list[tuple[str, str | None, dict, bool]]:
    """(row name, world-model name or None for the policy alone, MPCOptions overrides, whether every policy seed
    plays it), in table order: the policy alone and MPC in each world model on every seed, then variants of the
    first world model's row (lambda, the terminal value) and the K x H_p sweep on the first ``--sweep_seeds``."""
    rows: list[tuple[str, str | None, dict, bool]] = [("policy alone", None, {}, True)]
    for model in models:
        rows.append((f"+ MPC ({model}) K={default_k} H={default_h}", model, {}, True))
    first, at = models[0], f"K={default_k} H={default_h}"
    for lam in lambdas:
        if lam != base.uncertainty_penalty:
            rows.append((f"+ MPC ({first}) {at} lambda={lam:g}", first, {"uncertainty_penalty": lam}, False))
    if variants:
        if base.terminal_value:
            rows.append((f"+ MPC ({first}) {at} no terminal value", first, {"terminal_value": False}, False))
        other = "last" if base.value_at == "end" else "end"
        rows.append((f"+ MPC ({first}) {at} value_at={other}", first, {"value_at": other}, False))
    for k in ks:
        for h in hs:
            if (k, h) != (default_k, default_h):
                rows.append((f"+ MPC ({first}) K={k} H={h}", first, {"candidates": k, "horizon": h}, False))
    return rows


@torch.no_grad()
def critic_gap(policy, model, data_path: str, transitions: int = 2000, seed: int = 0) -> dict[str, float]:
    """What the planner's terminal value reads: the critic's value of the policy's action at the real next step and
    at the world model's prediction of it, from the same dataset transitions (non-terminal ones)."""
    from logo.data.reader import OfflineDataset, gather_transitions

    data = OfflineDataset.load(data_path)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.n_transitions, generator=generator)[:transitions]
    t = gather_transitions(data.storage(), idx)
    alive = t["terminals"] == 0
    out = model.step(t["obs"], t["state"], t["actions"], t.get("avail_actions"))

    def value(obs, state, avail):
        return policy.q_tot(obs, state, policy.act(obs, avail_actions=avail, state=state))

    real = value(t["next_obs"], t["next_state"], t.get("next_avail_actions"))[alive]
    predicted = value(out.next_obs, out.next_state, out.next_avail)[alive]
    return {"q_data": float(policy.q_tot(t["obs"], t["state"], t["actions"]).mean()),
            "value_real_next": float(real.mean()), "value_predicted_next": float(predicted.mean()),
            "value_abs_gap": float((real - predicted).abs().mean()),
            "next_obs_mse": float((out.next_obs - t["next_obs"]).square().mean()),
            "next_obs_var": float(t["next_obs"].var(0).mean()),
            "returns_to_go": float(data.returns_to_go(policy.hparams.get("gamma", 0.99))[idx.numpy()].mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the dataset whose environment is played")
    parser.add_argument("--policies", nargs="+", required=True, help="policy checkpoints (one per training seed)")
    parser.add_argument("--world_models", nargs="+", required=True, help="NAME=CHECKPOINT; the first is swept")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--num_envs", type=int, default=8)
    parser.add_argument("--eval_seed", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=64, help="default K")
    parser.add_argument("--horizon", type=int, default=5, help="default H_p")
    parser.add_argument("--sweep_k", type=int, nargs="*", default=[16, 64, 256])
    parser.add_argument("--sweep_h", type=int, nargs="*", default=[1, 3, 5, 10])
    parser.add_argument("--sweep_seeds", type=int, default=1, help="policy checkpoints the variants and the K x H "
                        "sweep run on")
    parser.add_argument("--lambdas", type=float, nargs="*", default=[0.0, 0.1], help="variants of lambda")
    parser.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                        help="the first world model's no-terminal-value and other value_at rows (--no-variants: none)")
    parser.add_argument("--options", default="{}", help="JSON of MPCOptions for every MPC row, e.g. "
                        '\'{"value_at": "last"}\'')
    parser.add_argument("--out", required=True, help="JSON result file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    _, spec = open_dataset(args.data)
    env, reference = make_dataset_env(spec, num_envs=min(args.num_envs, args.episodes))
    paths = dict(item.split("=", 1) for item in args.world_models)
    base = MPCOptions(**{**json.loads(args.options), "candidates": args.candidates, "horizon": args.horizon})
    models = {name: load_planner_model(MPCOptions(world_model=path), env.spec) for name, path in paths.items()}
    policies = [load_policy(path).eval() for path in args.policies]
    default = (args.candidates, args.horizon)
    started = time.perf_counter()
    results = []
    for name, model_name, overrides, every_seed in settings(list(paths), args.sweep_k, args.sweep_h, *default, base,
                                                             args.lambdas, args.variants):
        per_seed = []
        for i, policy in enumerate(policies):
            if not every_seed and i >= args.sweep_seeds:
                break
            if model_name is None:
                player = ModulePolicy(policy, env.spec)
            else:
                options = MPCOptions(**{**base.__dict__, "world_model": paths[model_name], **overrides})
                player = MPCPlanner(policy, models[model_name], env.spec, options)
            clock = time.perf_counter()
            metrics = evaluate_policy(env, player, args.episodes, args.eval_seed, reference).metrics()
            metrics["eval_seconds"] = time.perf_counter() - clock
            per_seed.append(metrics)
            print(f"[mpc] {name} policy {i}: return {metrics['return_mean']:.3f} win "
                  f"{metrics.get('win_rate', float('nan')):.2f} ms/step {metrics.get('plan_ms_per_step', 0):.1f}",
                  flush=True)
        results.append({"row": name, "world_model": model_name, "options": overrides, "per_seed": per_seed})
    env.close()
    gaps = {name: [critic_gap(policy, model, args.data) for policy in policies] for name, model in models.items()}
    for name, per_seed in gaps.items():
        print(f"[mpc] critic at real vs {name}-predicted next steps: "
              + "; ".join(f"{k} {mean_std([g[k] for g in per_seed], 3)}" for k in per_seed[0]), flush=True)
    record = {"critic_gap": gaps, "data": args.data, "policies": args.policies, "world_models": paths,
              "episodes": args.episodes, "num_envs": args.num_envs, "eval_seed": args.eval_seed,
              "default_options": base.__dict__,
              "rows": results, "seconds": time.perf_counter() - started, "git_revision": provenance.git_revision(),
              "machine": provenance.machine(torch.device("cpu")), "command": " ".join(["python", *sys.argv])}
    provenance.write_json(Path(args.out), record)
    print(table(results))
    return 0


def mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"


def table(results: list[dict]) -> str:
    lines = ["| policy (LOGO+MACQL) | seeds | return | normalised | win rate | plan ms / env step "
             "| model transitions/s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        seeds = r["per_seed"]

        def col(key: str, digits: int = 2, seeds=seeds) -> str:
            return mean_std([s[key] for s in seeds if key in s], digits)

        lines.append(f"| {r['row']} | {len(seeds)} | {col('return_mean')} | {col('normalized_score', 1)} | "
                     f"{col('win_rate')} | {col('plan_ms_per_step', 1)} | {col('model_transitions_per_s', 0)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
