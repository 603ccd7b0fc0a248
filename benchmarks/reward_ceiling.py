"""How well can the team reward of MPE simple_spread be predicted from the data alone, and from a world model?

    OMP_NUM_THREADS=1 python benchmarks/reward_ceiling.py
    OMP_NUM_THREADS=1 python benchmarks/reward_ceiling.py --checkpoint runs/.../best.ckpt [more.ckpt ...]

Same split as ``logo fit`` (``data.seed`` 0, 10% of episodes held out), rewards standardised with the
training split. Prints: (1) the reward recomputed from s' (and from s) by mpe2's formula, to show which
state it is a function of; (2) held-out standardised MSE and R^2 of a [256, 256] SiLU MLP trained by MSE
(batch 256, Adam 1e-3) on (a) s', (b) s and the joint action, (c) s, a and s', (d) the 12 agent-landmark
and agent-agent distances of s'; (3) for each ``--checkpoint``, the world model's reward error when its
deductive model reads the true o' and the predicted o', and the error of mpe2's formula applied to the
model's predicted s'. Results and the command's numbers: docs/world_model.md, "The reward on MPE spread".
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from logo.data.datamodule import OfflineMARLDataModule
from logo.data.reader import gather_transitions

N, BLOCK = 3, 18  # agents; each agent's block of the state: vel 2, pos 2, landmarks 6, others 4, comm 4
LOCAL_RATIO, COLLIDE = 0.5, 0.3  # mpe2 spread: reward = 0.5 global + 0.5 own collisions; two radii of 0.15


def positions(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """State [B, 54] -> agent positions [B, N, 2] and landmark positions [B, N, 2] (absolute)."""
    s = state.double().reshape(-1, N, BLOCK)
    pos = s[:, :, 2:4]
    return pos, s[:, 0, 4:10].reshape(-1, N, 2) + pos[:, :1]


def spread_reward(state: torch.Tensor) -> torch.Tensor:
    """mpe2's team reward (sum over agents) of the positions in ``state`` [B, 54] -> [B]."""
    pos, marks = positions(state)
    cover = -(pos[:, :, None] - marks[:, None]).norm(dim=-1).min(1).values.sum(1)  # minus nearest-agent distances
    collisions = ((torch.cdist(pos, pos) < COLLIDE) & ~torch.eye(N, dtype=torch.bool)).sum((1, 2))
    return N * (1 - LOCAL_RATIO) * cover - LOCAL_RATIO * collisions


def distances(state: torch.Tensor) -> torch.Tensor:
    pos, marks = positions(state)
    return torch.cat([(pos[:, :, None] - marks[:, None]).norm(dim=-1).flatten(1), torch.cdist(pos, pos).flatten(1)],
                     1).float()


def fit_mlp(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, steps: int,
            seed: int) -> list[float]:
    """Held-out MSE every steps/5 updates."""
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], 256), torch.nn.SiLU(), torch.nn.Linear(256, 256),
                              torch.nn.SiLU(), torch.nn.Linear(256, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    errors = []
    for step in range(1, steps + 1):
        i = torch.randint(len(x_train), (256,))
        loss = F.mse_loss(net(x_train[i]).squeeze(-1), y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(steps // 5, 1) == 0:
            with torch.no_grad():
                errors.append(F.mse_loss(net(x_val).squeeze(-1), y_val).item())
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/mpe/simple_spread_v3/medium.zarr")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="world-model checkpoints to probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dm = OfflineMARLDataModule(args.data, seed=0, val_fraction=0.1)
    dm.setup("fit")
    train, val = (gather_transitions(dm.storage_on(torch.device("cpu")), idx) for idx in (dm.train_indices,
                                                                                           dm.val_indices))
    for key in ("next_state", "state"):
        error = (spread_reward(train[key]) - train["rewards"].double()).abs()
        print(f"mpe2 formula on {key:10s}: max |error| {error.max():.2e}, mean {error.mean():.2e}")
    mean, std = dm.statistics["reward_mean"], dm.statistics["reward_std"]
    y_train, y_val = (train["rewards"] - mean) / std, (val["rewards"] - mean) / std
    var = y_val.var(unbiased=False).item()
    print(f"held-out rewards: {len(y_val)}, variance {var:.4f} (standardised units)")

    def inputs(b: dict) -> dict[str, torch.Tensor]:
        joint = F.one_hot(b["actions"].long(), dm.action_size).flatten(1).float()
        return {"(a) s'": b["next_state"], "(b) s, a": torch.cat([b["state"], joint], 1),
                "(c) s, a, s'": torch.cat([b["state"], joint, b["next_state"]], 1),
                "(d) distances of s'": distances(b["next_state"])}

    print(f"| MLP input | held-out MSE at {', '.join(str(args.steps // 5 * k) for k in range(1, 6))} updates "
          "| best R^2 | last R^2 |\n|---|---|---|---|")
    for (name, x_train), x_val in zip(inputs(train).items(), inputs(val).values()):
        errors = fit_mlp(x_train, y_train, x_val, y_val, args.steps, args.seed)
        print(f"| {name} | {' '.join(f'{e:.3f}' for e in errors)} | {1 - min(errors) / var:.3f} "
              f"| {1 - errors[-1] / var:.3f} |")
    for checkpoint in args.checkpoint:
        probe(checkpoint, val, var)


@torch.no_grad()
def probe(checkpoint: str, val: dict, var: float) -> None:
    from logo.world_model import load_world_model

    model = load_world_model(checkpoint)
    s = model.state_dim
    inputs, targets = model.normalise_inputs(val["obs"], val["state"], val["actions"]), model.targets(val)
    _, heads = model.deductive(targets["next_obs"], inputs)
    pred = model.predict(inputs)
    formula = model.reward_norm(spread_reward(model.state_norm.inverse(pred.next_state)).float())
    for name, reward in (("deduced from the true o'", heads["mean"][:, s]),
                         ("deduced from the predicted o' (val/mse_reward)", pred.reward),
                         ("mpe2 formula on the predicted s'", formula)):
        mse = F.mse_loss(reward, targets["rewards"]).item()
        print(f"{checkpoint}: reward {name}: MSE {mse:.4f}, R^2 {1 - mse / var:.3f}")
    print(f"{checkpoint}: next state MSE {F.mse_loss(pred.next_state, targets['next_state']).item():.4f}")


if __name__ == "__main__":
    main()
