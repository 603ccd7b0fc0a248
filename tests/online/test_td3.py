"""OnlineTD3 trained through a real `logo fit` in MaMuJoCo, its losses alone, and the medium-replay export."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from logo.cli import main
from logo.data.reader import OfflineDataset
from logo.data.validate import validate_dataset
from logo.envs import make_env
from logo.envs.episodes import episode_seed, run_episodes
from logo.envs.policies import ModulePolicy
from logo.errors import LogoError
from logo.online.td3 import OnlineTD3, actor_loss, smooth_target_actions
from logo.policy.checkpoint import load_policy
from logo.policy.losses import soft_update, td_target
from tests.conftest import ROOT

pytest.importorskip("gymnasium_robotics")

CONFIG = ROOT / "configs/behaviour/mamujoco_halfcheetah_2x3_td3.yaml"
SCENARIO = "Hopper-3x1"  # random actions fall within ~20 steps: terminations; a 40-step limit: truncations
STEPS, EVAL_EVERY, SEED = 400, 100, 3


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/online/conftest.py


def _fit(root: Path, threshold: float, steps: int = STEPS, hidden: list[int] | None = None,
         start_steps: int = 100, eval_every: int = EVAL_EVERY, max_episode_steps: int = 40) -> None:
    """The shipped behaviour config with a small override stacked on it, run through `logo fit`."""
    override = {
        "trainer": {
            "max_steps": steps, "default_root_dir": str(root), "enable_progress_bar": False,
            "log_every_n_steps": 50,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root), "name": ""}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(root / "checkpoints"), "monitor": "eval/return", "mode": "max",
                               "save_last": True, "every_n_train_steps": eval_every}},
                {"class_path": "ReplayExport",
                 "init_args": {"out": str(root / "medium-replay.zarr"), "return_threshold": threshold}},
                {"class_path": "ReplayExport",  # never reached: writes nothing
                 "init_args": {"out": str(root / "never.zarr"), "return_threshold": 1e9,
                               "checkpoint_name": "never.ckpt"}},
            ]},
        "model": {"init_args": {"hidden_sizes": hidden or [16, 16], "batch_size": 32, "start_steps": start_steps,
                                "eval_every": eval_every, "eval_episodes": 2}},
        "data": {"init_args": {"scenario": SCENARIO, "env_options": {"max_episode_steps": max_episode_steps},
                               "total_steps": steps, "buffer_size": steps, "seed": SEED}},
    }
    path = root / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    assert main(["fit", "--config", str(CONFIG), "--config", str(path)]) == 0


def _metric(root: Path, name: str) -> list[tuple[int, float]]:
    with open(next(root.rglob("metrics.csv"))) as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f) if r.get(name)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[warnings.WarningMessage]]:
    """One tiny real run: a threshold reached at the first evaluation (step 100) and one never reached."""
    root = tmp_path_factory.mktemp("td3")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _fit(root, threshold=-1e9)
    finally:
        torch.set_num_threads(before)
    return root, caught


# ---- losses, alone -------------------------------------------------------------------------------


def test_target_bootstraps_truncation_but_not_termination():
    rewards = torch.tensor([1.0, 1.0, 1.0])
    q1, q2 = torch.tensor([10.0, 10.0, 10.0]), torch.tensor([5.0, 20.0, 5.0])
    terminated = torch.tensor([False, True, False])  # step 3 is a truncation: not terminal
    target = td_target(rewards, terminated, torch.min(q1, q2), gamma=0.9)  # TD3's clipped double-Q target
    torch.testing.assert_close(target, torch.tensor([1 + 0.9 * 5, 1.0, 1 + 0.9 * 5]))


def test_target_smoothing_noise_is_clipped_and_actions_stay_in_bounds():
    torch.manual_seed(0)
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0])
    actions = torch.tensor([0.0, 2.0]).expand(1000, 3, 2)
    smoothed = smooth_target_actions(actions, noise_std=10.0, noise_clip=0.5, low=low, high=high)
    assert smoothed.shape == actions.shape
    assert ((smoothed >= low) & (smoothed <= high)).all()
    half_range = (high - low) / 2
    assert ((smoothed - actions).abs() <= 0.5 * half_range + 1e-6).all()
    assert (smoothed - actions).abs().amax((0, 1)).allclose(0.5 * half_range)  # the clip is hit


def test_soft_update_moves_targets_by_tau():
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = [0.9 * t.detach() + 0.1 * s.detach() for t, s in zip(target.parameters(), source.parameters())]
    soft_update(target, source, tau=0.1)
    for got, want in zip(target.parameters(), expected):
        torch.testing.assert_close(got, want)


def test_actor_loss_never_reaches_the_critics():
    torch.manual_seed(0)
    model = OnlineTD3(2, 5, 7, "continuous", 3, hidden_sizes=[8])
    batch = {"state": torch.randn(16, 7), "next_state": torch.randn(16, 7), "actions": torch.rand(16, 2, 3) * 2 - 1,
             "rewards": torch.randn(16), "terminals": torch.rand(16) < 0.3}
    torch.manual_seed(1)
    model.losses(batch, update_actor=False)["critic_loss"].backward()
    critic_only = [p.grad.clone() for p in model.critic.parameters()]
    assert all(p.grad is None for p in model.actor.parameters())
    model.zero_grad()
    torch.manual_seed(1)  # same target smoothing noise
    out = model.losses(batch, update_actor=True)
    (out["critic_loss"] + out["actor_loss"]).backward()
    for got, want in zip(model.critic.parameters(), critic_only):
        torch.testing.assert_close(got.grad, want)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.actor.parameters())
    assert actor_loss(torch.tensor([1.0, 3.0])) == -2.0


def test_discrete_actions_are_refused():
    with pytest.raises(LogoError, match="continuous"):
        OnlineTD3(3, 18, 54, "discrete", 5)


def test_act_needs_the_state_and_stays_in_bounds():
    model = OnlineTD3(2, 5, 7, "continuous", 3, hidden_sizes=[8])
    with pytest.raises(LogoError, match="state"):
        model.act(torch.zeros(4, 2, 5))
    actions = model.act(torch.zeros(4, 2, 5), state=100 * torch.randn(4, 7))
    assert actions.shape == (4, 2, 3) and actions.abs().max() <= 1.0


# ---- a real run ----------------------------------------------------------------------------------


def test_run_logs_evaluations_and_checkpoints_by_eval_return(run):
    root, _ = run
    evals = _metric(root, "eval/return")
    assert [step for step, _ in evals] == [100, 200, 300, 400]  # logged at env steps, once each
    names = {p.name for p in (root / "checkpoints").iterdir()}
    assert {"last.ckpt", "medium.ckpt"} <= names and "never.ckpt" not in names
    assert _metric(root, "train/episode_return"), "no training episode finished"
    raw = torch.load(root / "checkpoints/last.ckpt", weights_only=False)
    assert raw["global_step"] == STEPS  # one optimizer step per env step


def test_checkpoint_reloads_and_acts_in_the_environment(run):
    root, _ = run
    policy = load_policy(root / "checkpoints/medium.ckpt")
    assert isinstance(policy, OnlineTD3)
    env = make_env("mamujoco", SCENARIO, num_envs=2, max_episode_steps=15)
    ts = env.reset([0, 1])
    actions = ModulePolicy(policy, env.spec).act(ts)
    assert actions.shape == (2, env.spec.n_agents, env.spec.action_dim) and actions.dtype == np.float32
    assert (actions >= np.array(env.spec.action_low)).all() and (actions <= np.array(env.spec.action_high)).all()
    episodes = list(run_episodes(env, ModulePolicy(policy, env.spec), [5, 6]))
    assert all(1 <= e.length <= 15 for e in episodes)


def test_medium_replay_is_valid_and_replays_exactly(run):
    root, _ = run
    path = root / "medium-replay.zarr"
    assert validate_dataset(path) == []
    data = OfflineDataset.load(path)
    attrs = data.attrs
    assert attrs["quality"] == "medium-replay" and "replay buffer of OnlineTD3" in attrs["behaviour"]
    assert attrs["extra"]["env_steps"] == EVAL_EVERY and attrs["extra"]["eval_return"] > -1e9
    arrays = data.arrays
    starts = list(data.episode_bounds())
    assert starts[-1] <= EVAL_EVERY and len(starts) - 1 == attrs["n_episodes"]
    # the episodes logged during training, in order, are the dataset's episodes
    logged = [r for _, r in _metric(root, "train/episode_return")][: attrs["n_episodes"]]
    returns = [float(arrays["rewards"][a:b].sum()) for a, b in zip(starts[:-1], starts[1:])]
    np.testing.assert_allclose(returns, logged, rtol=1e-5, atol=1e-4)
    # replaying the recorded actions from each episode's reset seed gives the recorded episode back
    env = make_env("mamujoco", SCENARIO, num_envs=1, max_episode_steps=40)
    flags = set()
    for e, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        ts = env.reset([episode_seed(SEED, e)])
        for t in range(a, b):
            np.testing.assert_allclose(ts.obs[0], arrays["observations"][t], atol=1e-5)
            np.testing.assert_allclose(ts.state[0], arrays["state"][t], atol=1e-5)
            ts = env.step(arrays["actions"][t][None])
            assert ts.reward[0] == pytest.approx(arrays["rewards"][t], abs=1e-5)
            assert bool(ts.terminated[0]) == bool(arrays["terminals"][t])
            assert bool(ts.truncated[0]) == bool(arrays["truncations"][t])
        np.testing.assert_allclose(ts.obs[0], arrays["final_observations"][e], atol=1e-5)
        assert ts.done[0]
        flags.add("terminated" if ts.terminated[0] else "truncated")
    assert flags == {"terminated", "truncated"}, "the run should exercise both episode ends"


def test_replay_export_writes_nothing_below_its_threshold(run):
    root, caught = run
    assert not (root / "never.zarr").exists()
    messages = [str(w.message) for w in caught]
    assert any("never reached 1e+09" in m and "never.zarr" in m for m in messages), messages


def test_replay_export_refuses_an_existing_dataset_before_training(run, tmp_path, capsys):
    root, _ = run
    override = tmp_path / "o.yaml"
    override.write_text(yaml.safe_dump({
        "trainer": {"max_steps": 5, "default_root_dir": str(tmp_path), "logger": False,
                    "enable_progress_bar": False,
                    "callbacks": [{"class_path": "ReplayExport",
                                   "init_args": {"out": str(root / "medium-replay.zarr"), "return_threshold": 0}}]},
        "data": {"init_args": {"scenario": SCENARIO, "total_steps": 5}}}))
    assert main(["fit", "--config", str(CONFIG), "--config", str(override)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_return_improves_over_a_short_run(tmp_path):
    """Hopper-3x1, 12k env steps: evaluation return rises well above the untrained policy's (a few minutes)."""
    _fit(tmp_path, threshold=1e9, steps=12_000, hidden=[64, 64], start_steps=2000, eval_every=2000,
         max_episode_steps=1000)
    evals = [r for _, r in _metric(tmp_path, "eval/return")]
    assert max(evals[-2:]) > 2 * evals[0] + 50, evals
