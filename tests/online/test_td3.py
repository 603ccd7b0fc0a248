"""OnlineTD3 trained through a real `logo fit` in MaMuJoCo, its losses alone, the medium-replay export, and the
learned tiers of a TD3 run (`logo tiers`)."""

from __future__ import annotations

import csv
import json
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


# ---- the learned tiers of a TD3 run (logo tiers) -------------------------------------------------

TIERS_CONFIG = ROOT / "configs/behaviour/mamujoco_hopper_3x1_td3.yaml"
TIERS_STEPS, TIERS_EPISODES, TIERS_MIN_TRANSITIONS, TIERS_ENVS = 300, 4, 200, 4


def tiers_override(root: Path, extra_callbacks: list | None = None) -> Path:
    """A tiny budget stacked on the shipped Hopper behaviour config: 30-step episodes, 300 env steps."""
    override = {
        "trainer": {
            "max_steps": TIERS_STEPS, "default_root_dir": str(root / "run"), "enable_progress_bar": False,
            "log_every_n_steps": 50,
            "logger": {"class_path": "LogoCSVLogger", "init_args": {"save_dir": str(root / "run"), "name": ""}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(root / "run/checkpoints"), "save_last": True, "save_top_k": 0,
                               "every_n_train_steps": 100}},
                {"class_path": "ReturnSnapshots", "init_args": {"thresholds": list(range(0, 100, 5))}},
                *(extra_callbacks or [])]},
        "model": {"init_args": {"hidden_sizes": [16], "batch_size": 32, "start_steps": 100, "eval_every": 50,
                                "eval_episodes": 2}},
        "data": {"init_args": {"env_options": {"max_episode_steps": 30}, "total_steps": TIERS_STEPS,
                               "buffer_size": TIERS_STEPS, "seed": SEED}}}
    path = root / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def tiers_args(root: Path, behaviour: list[Path]) -> list[str]:
    return ["tiers", "--behaviour", json.dumps([str(b) for b in behaviour]), "--out", str(root / "learned"),
            "--episodes", str(TIERS_EPISODES), "--num_envs", str(TIERS_ENVS), "--reference_episodes", "4",
            "--min_transitions", str(TIERS_MIN_TRANSITIONS), "--require_ordered", "false"]  # tiny: barely differ


@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    """One tiny `logo tiers` build on a TD3 run in Hopper-3x1 (behaviour fit + all tiers), shared below."""
    root = tmp_path_factory.mktemp("td3_tiers")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = tiers_args(root, [TIERS_CONFIG, tiers_override(root)])
        assert main(args) == 0
    finally:
        torch.set_num_threads(before)
    return root, args


def test_td3_tiers_are_valid_datasets_with_provenance(tiers):
    root, _ = tiers
    out = root / "learned"
    index = json.loads((root / "run/snapshots/index.json").read_text())
    assert index["final"]["env_steps"] == TIERS_STEPS and index["final"]["eval_win_rate"] is None
    for tier in ("expert", "medium", "medium-replay", "mixed"):
        assert main(["data", "validate", str(out / f"{tier}.zarr")]) == 0
        data = OfflineDataset.load(out / f"{tier}.zarr")
        made = data.attrs["provenance"]
        assert data.spec.quality == tier and made["kind"] == "learned" and made["tier"] == tier
        assert made["behaviour_class"] == "OnlineTD3" and made["seed"] == SEED
        assert made["training_env_steps"] and made["behaviour_checkpoint"] and "threshold" in made
        assert made["episodes"] == data.n_episodes and made["transitions"] == data.n_transitions
        assert made["return_mean"] == pytest.approx(float(data.episode_returns().mean()), abs=1e-4)
        assert "random" in data.spec.extra["reference_returns"]
    expert, medium = (OfflineDataset.load(out / f"{t}.zarr") for t in ("expert", "medium"))
    for data in (expert, medium):  # episodes first, then batches of num_envs until min_transitions
        assert data.n_transitions >= TIERS_MIN_TRANSITIONS and data.n_episodes > TIERS_EPISODES
        assert (data.n_episodes - TIERS_EPISODES) % TIERS_ENVS == 0
        assert "Gaussian noise of std 0.1" in data.attrs["provenance"]["acting"]
    made = medium.attrs["provenance"]
    assert made["eval_return"] >= 0.5 * expert.attrs["provenance"]["return_mean"]
    assert made["threshold"] is not None and made["min_transitions"] == TIERS_MIN_TRANSITIONS
    snapshot = next(s for s in index["snapshots"] if s["checkpoint"] == made["behaviour_checkpoint"])
    replay = OfflineDataset.load(out / "medium-replay.zarr")
    assert replay.n_episodes == snapshot["episodes_played"] == snapshot["journal_files"] >= 1
    assert replay.n_transitions <= snapshot["env_steps"]  # every episode finished until the medium snapshot
    logged = [r for _, r in _metric(root / "run", "train/episode_return")][: replay.n_episodes]
    np.testing.assert_allclose(replay.episode_returns(), logged, rtol=1e-5, atol=1e-4)
    assert OfflineDataset.load(out / "mixed.zarr").n_episodes == expert.n_episodes + medium.n_episodes


def test_td3_tiers_act_with_the_training_exploration_noise(tiers):
    """The expert tier's actions are the final actor's plus N(0, 0.1 x half the range), clipped: as it learned."""
    root, _ = tiers
    data = OfflineDataset.load(root / "learned/expert.zarr")
    policy = load_policy(root / "run/snapshots/final.ckpt")
    state = torch.as_tensor(data.arrays["state"][:])
    greedy = policy.act(None, state=state).numpy()  # [T, N, 1]
    actions = data.arrays["actions"][:]
    inside = np.abs(actions) < 1.0  # not clipped at the bounds
    noise = (actions - greedy)[inside]
    assert inside.mean() > 0.8 and abs(noise.mean()) < 0.02 and 0.08 < noise.std() < 0.12


def test_rebuilding_td3_tiers_skips_finished_parts(tiers, capsys):
    root, args = tiers
    files = [*(root / "learned").glob("*.zarr"), root / "run/snapshots/final.ckpt", root / "learned/references.json"]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and printed.count("skipped") == 5  # training and the four tiers
    assert {f: f.stat().st_mtime_ns for f in files} == stamps


def test_tiers_refuse_a_behaviour_config_without_return_snapshots(tmp_path, capsys):
    assert main(["tiers", "--behaviour", json.dumps([str(CONFIG), str(tiers_override(tmp_path))]), "--out",
                 str(tmp_path / "learned"), "--min_transitions", "0"]) == 2
    assert "min_transitions" in capsys.readouterr().err
    plain = yaml.safe_load(tiers_override(tmp_path).read_text())
    plain["trainer"]["callbacks"] = plain["trainer"]["callbacks"][:1]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    assert main(["tiers", "--behaviour", json.dumps([str(CONFIG), str(tmp_path / "plain.yaml")]), "--out",
                 str(tmp_path / "learned")]) == 2
    assert "no ReturnSnapshots" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_an_interrupted_td3_build_resumes_and_its_journal_stays_consistent(tmp_path, capfd):
    """Killed at env step 150 (last.ckpt at 100), resumed by the same command: the journal keeps its files up to the
    checkpoint, replaces those played after it, skips the seed of the episode the checkpoint cut, and ends with one
    file per finished episode, as the final snapshot counts them."""
    interrupt = [{"class_path": "tests.online.interrupt.Interrupt", "init_args": {"after": 150}}]
    interrupted = tmp_path / "interrupted.yaml"
    interrupted.write_text(tiers_override(tmp_path, interrupt).read_text())
    with pytest.raises(RuntimeError, match="simulated interruption"):
        main(tiers_args(tmp_path, [TIERS_CONFIG, interrupted]))
    last = tmp_path / "run/checkpoints/last.ckpt"
    saved = torch.load(last, weights_only=False)["OnlineEnvDataModule"]
    assert saved["env_steps"] == 100 and not (tmp_path / "learned").exists()
    played = tmp_path / "run/played"
    assert len(list(played.glob("*.npz"))) > saved["finished"]  # episodes finished after the checkpoint
    kept = {p: p.stat().st_mtime_ns for p in sorted(played.glob("*.npz"))[: saved["finished"]]}
    capfd.readouterr()
    assert main(tiers_args(tmp_path, [TIERS_CONFIG, tiers_override(tmp_path)])) == 0
    assert "resuming the interrupted run" in capfd.readouterr().out
    final = json.loads((tmp_path / "run/snapshots/index.json").read_text())["final"]
    assert final["env_steps"] == TIERS_STEPS
    files = sorted(played.glob("*.npz"))
    assert [p.name for p in files] == [f"{i:07d}.npz" for i in range(final["journal_files"])]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    seeds = [int(np.load(p)["seeds"][0]) for p in files]
    cut = saved["episodes"] - 1  # the episode in progress at the checkpoint: dropped
    expected = [k for k in range(final["journal_files"] + 1) if k != cut]
    assert seeds == [episode_seed(SEED, k) for k in expected]
    assert validate_dataset(tmp_path / "learned/medium-replay.zarr") == []
