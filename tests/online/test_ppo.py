"""OnlineMAPPO: its loss pieces on hand-computed cases, legal-action masking, and real fits in SMAX 3m."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from logo.cli import main
from logo.errors import LogoError
from logo.online.ppo_losses import (
    clipped_policy_loss,
    entropy,
    gae,
    greedy_actions,
    log_probs,
    masked_logits,
    normalize,
    sample_actions,
    value_loss,
)
from tests.conftest import ROOT

CONFIG = ROOT / "configs/behaviour/smax_3m_mappo.yaml"
NUM_ENVS = 8  # one batch size everywhere: SMAX compiles once per batch size


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/online/conftest.py


# ---- loss pieces, by hand ------------------------------------------------------------------------


def test_gae_bootstraps_a_truncation_and_not_a_termination():
    pytest.importorskip("torchrl")
    # two copies, time first [T=3, B=2]; copy 0 is cut by the time limit at t=2, copy 1 truly ends at t=1
    rewards = torch.tensor([[1.0, 0.5], [0.0, 1.0], [2.0, 0.0]])
    values = torch.tensor([[0.5, 0.3], [0.2, 0.4], [0.1, 0.0]])
    next_values = torch.tensor([[0.2, 0.4], [0.1, 9.0], [0.9, 0.0]])  # 9.0: never used (terminated)
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    done = torch.tensor([[False, False], [False, True], [True, True]])
    gamma, lam = 0.9, 0.8
    adv, targets = gae(rewards, values, next_values, terminated, done, gamma, lam)
    # copy 0: deltas 1 + .9 * .2 - .5 = .68, 0 + .9 * .1 - .2 = -.11, 2 + .9 * .9 - .1 = 2.71 (bootstrapped)
    a2 = 2.71
    a1 = -0.11 + 0.72 * a2
    a0 = 0.68 + 0.72 * a1
    # copy 1: t=1 terminated: delta 1 - .4 = .6 (no bootstrap); t=0: .5 + .9 * .4 - .3 = .56, + .72 * .6
    expected = torch.tensor([[a0, 0.56 + 0.72 * 0.6], [a1, 0.6], [a2, 0.0]])
    assert torch.allclose(adv[:, 0], expected[:, 0], atol=1e-5)
    assert torch.allclose(adv[:2, 1], expected[:2, 1], atol=1e-5)
    assert torch.allclose(targets, adv + values, atol=1e-6)


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9]))  # ratios 1.5, 0.5, 1.1, 0.9
    adv = torch.tensor([1.0, 1.0, -2.0, -2.0])
    loss, clipped, kl = clipped_policy_loss(new, old, adv, clip=0.2)
    # min(r A, clip(r, 0.8, 1.2) A) per row: min(1.5, 1.2) = 1.2, min(0.5, 0.8) = 0.5, -2.2, -1.8
    expected = -(1.2 + 0.5 - 2.2 - 1.8) / 4  # 0.575
    assert loss.item() == pytest.approx(expected)
    assert clipped.item() == pytest.approx(0.5)  # ratios 1.5 and 0.5 lie outside [0.8, 1.2]
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.9])
    assert kl.item() == pytest.approx(((ratios - 1) - ratios.log()).mean().item())


def test_clipped_policy_loss_has_no_gradient_where_clipped():
    new = torch.log(torch.tensor([1.5, 1.0])).requires_grad_()
    loss, _, _ = clipped_policy_loss(new, torch.zeros(2), torch.tensor([1.0, 1.0]), clip=0.2)
    loss.backward()
    assert new.grad[0] == 0.0 and new.grad[1] == pytest.approx(-0.5)  # d(-mean(r A))/dlogp = -r A / 2


def test_value_loss_entropy_and_normalize_by_hand():
    assert value_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(0.5 * (1 + 4) / 2)
    logits = torch.tensor([[0.0, 0.0, 5.0, 5.0]])
    avail = torch.tensor([[True, True, False, False]])
    assert entropy(logits, avail).item() == pytest.approx(math.log(2))  # uniform over the two legal actions
    assert torch.allclose(log_probs(logits, avail)[0, :2].exp(), torch.tensor([0.5, 0.5]))
    assert log_probs(logits, avail)[0, 2:].exp().sum().item() == 0.0
    z = normalize(torch.tensor([1.0, 2.0, 3.0]))
    assert z.mean().item() == pytest.approx(0.0, abs=1e-6) and z.std().item() == pytest.approx(1.0, abs=1e-5)


def test_sampling_and_greedy_never_pick_an_illegal_action():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 8, generator=g) * 5
    avail = torch.rand(20_000, 8, generator=g) < 0.3
    avail[torch.arange(20_000), torch.randint(0, 8, (20_000,), generator=g)] = True  # one legal action at least
    logits[~avail] += 50.0  # the network prefers illegal actions by far
    actions = sample_actions(logits, avail, g)
    assert avail.gather(-1, actions[:, None]).all()
    assert avail.gather(-1, greedy_actions(logits, avail)[:, None]).all()
    assert masked_logits(logits, None) is logits
    # a seeded generator repeats its draws; the draws follow the masked softmax
    assert torch.equal(sample_actions(logits, avail, torch.Generator().manual_seed(3)),
                       sample_actions(logits, avail, torch.Generator().manual_seed(3)))
    two = torch.tensor([[math.log(3.0), 0.0, 99.0]]).expand(30_000, 3)
    draws = sample_actions(two, torch.tensor([[True, True, False]]).expand(30_000, 3), g)
    assert (draws == 0).float().mean().item() == pytest.approx(0.75, abs=0.015) and (draws < 2).all()


def test_an_actor_on_observation_and_state_needs_the_state():
    from logo.online import OnlineMAPPO

    model = OnlineMAPPO(3, 5, 7, "discrete", 4, hidden_sizes=[8], actor_input="obs+state")
    obs, state, avail = torch.randn(2, 3, 5), torch.randn(2, 7), torch.ones(2, 3, 4, dtype=torch.bool)
    assert model.logits(obs, state).shape == (2, 3, 4) and model.act(obs, avail, state).shape == (2, 3)
    changed = state.clone()
    changed[0] += 1.0  # the state reaches every agent's logits of its own copy only
    delta = (model.logits(obs, changed) - model.logits(obs, state)).abs().sum((1, 2))
    assert delta[0] > 0 and delta[1] == 0
    with pytest.raises(LogoError, match="pass state"):
        model.act(obs, avail)
    with pytest.raises(LogoError, match="actor_input"):
        OnlineMAPPO(3, 5, 7, "discrete", 4, actor_input="state")


# ---- in SMAX -------------------------------------------------------------------------------------


def behaviour_override(root: Path, total_steps: int, thresholds: list[float], extra_callbacks: list | None = None,
                       hidden: list[int] | None = None, eval_every: int = 1) -> Path:
    """A YAML stacked on the shipped behaviour config: a run folder under ``root`` and a small budget."""
    override = {
        "trainer": {
            "default_root_dir": str(root / "run"), "enable_progress_bar": False,
            "logger": {"class_path": "LogoCSVLogger", "init_args": {"save_dir": str(root / "run"), "name": ""}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(root / "run/checkpoints"), "save_last": True, "save_top_k": 0,
                               "every_n_train_steps": 2}},
                {"class_path": "ReturnSnapshots", "init_args": {"thresholds": thresholds}},
                *(extra_callbacks or [])]},
        "model": {"init_args": {"eval_every": eval_every, "eval_episodes": NUM_ENVS, "hidden_sizes": hidden or [32],
                                "epochs": 1, "minibatches": 2}},
        "data": {"init_args": {"total_steps": total_steps, "num_envs": NUM_ENVS}}}
    path = root / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def test_rollouts_only_take_legal_actions_and_keep_whole_episodes(tmp_path):
    pytest.importorskip("jaxmarl")
    from logo.online import OnlineMAPPO, RolloutDataModule

    dm = RolloutDataModule("smax", "3m", num_envs=NUM_ENVS, total_steps=10_000, journal=str(tmp_path / "played"))
    model = OnlineMAPPO(dm.n_agents, dm.obs_dim, dm.state_dim, dm.action_kind, dm.action_size, hidden_sizes=[16])
    with torch.no_grad():  # an actor that strongly prefers attacking enemy 2, illegal while out of range
        model.actor.net[-1].bias[7] = 20.0
    rollout = dm.play(model.behaviour)  # the env itself raises on any illegal action
    taken = np.take_along_axis(rollout.avail, rollout.actions[..., None], -1)[..., 0]  # [T, B, N]
    assert taken[rollout.valid].all()
    assert (rollout.actions[rollout.valid] != 7).any()  # the mask overrode the network's preference
    assert rollout.done[rollout.lengths - 1, np.arange(NUM_ENVS)].all() and rollout.valid[0].all()
    assert dm.env_steps == rollout.valid.sum() and dm.iterations == 1 and dm.episodes == NUM_ENVS
    journal = np.load(tmp_path / "played/0000000.npz")
    assert journal["lengths"].sum() == dm.env_steps and len(journal["obs"]) == dm.env_steps
    adv, targets = model.advantages(rollout)
    assert adv.shape == rollout.rewards.shape and torch.isfinite(adv[torch.as_tensor(rollout.valid)]).all()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One tiny `logo tiers` build (behaviour fit + all tiers) shared by the tests below."""
    pytest.importorskip("jaxmarl")
    pytest.importorskip("torchrl")
    root = tmp_path_factory.mktemp("tiers")
    override = behaviour_override(root, total_steps=500, thresholds=[0.0, 0.1, 0.2, 0.3])
    args = ["tiers", "--behaviour", json.dumps([str(CONFIG), str(override)]), "--out", str(root / "learned"),
            "--episodes", "12", "--num_envs", str(NUM_ENVS), "--reference_episodes", "8",
            "--require_ordered", "false"]  # a 500-step policy's snapshots barely differ
    assert main(args) == 0
    return root, args


def test_fit_logs_eval_return_and_win_rate_and_snapshots(built):
    root, _ = built
    rows = list(csv.DictReader(open(next((root / "run").glob("version_*/metrics.csv")))))
    evals = [r for r in rows if r.get("eval/return")]
    assert evals and all(r["eval/win_rate"] != "" for r in evals)
    assert any(r.get("train/policy_loss") for r in rows) and any(r.get("train/entropy") for r in rows)
    index = json.loads((root / "run/snapshots/index.json").read_text())
    assert index["final"]["env_steps"] >= 500 and Path(index["final"]["checkpoint"]).is_file()
    assert index["snapshots"][0]["threshold"] == 0.0  # every evaluation return is >= 0
    files = sorted((root / "run/played").glob("*.npz"))
    assert len(files) == index["final"]["iteration"]  # one journal file per iteration, no extra iteration


def test_tiers_are_valid_datasets_with_provenance(built, capsys):
    root, _ = built
    out = root / "learned"
    from logo.data.reader import OfflineDataset

    for tier in ("expert", "medium", "medium-replay", "mixed"):
        assert main(["data", "validate", str(out / f"{tier}.zarr")]) == 0
        data = OfflineDataset.load(out / f"{tier}.zarr")
        made = data.attrs["provenance"]
        assert data.spec.quality == tier and made["kind"] == "learned" and made["tier"] == tier
        for key in ("behaviour_checkpoint", "training_env_steps", "seed", "threshold", "return_mean", "win_rate"):
            assert key in made, (tier, key)
        assert made["episodes"] == data.n_episodes and made["transitions"] == data.n_transitions
        assert made["return_mean"] == pytest.approx(float(data.episode_returns().mean()), abs=1e-5)
        assert data.spec.extra["reference_returns"]["random"] > 0
    index = json.loads((root / "run/snapshots/index.json").read_text())
    medium = OfflineDataset.load(out / "medium.zarr").attrs["provenance"]
    expert = OfflineDataset.load(out / "expert.zarr")
    assert medium["eval_return"] >= 0.5 * expert.attrs["provenance"]["return_mean"]
    replay = OfflineDataset.load(out / "medium-replay.zarr")
    snapshot = next(s for s in index["snapshots"] if s["checkpoint"] == medium["behaviour_checkpoint"])
    assert replay.n_episodes == snapshot["episodes_played"]  # every episode played until the medium snapshot
    assert OfflineDataset.load(out / "mixed.zarr").n_episodes == 2 * expert.n_episodes == 24
    capsys.readouterr()
    assert main(["data", "info", str(out / "medium.zarr")]) == 0
    printed = capsys.readouterr().out
    assert "provenance.behaviour_checkpoint" in printed and "provenance.threshold" in printed


def test_rebuilding_skips_finished_parts(built, capsys):
    root, args = built
    files = [*(root / "learned").glob("*.zarr"), root / "run/snapshots/final.ckpt", root / "learned/references.json"]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and printed.count("skipped") == 5  # training and the four tiers
    assert {f: f.stat().st_mtime_ns for f in files} == stamps


def test_errors_name_the_problem_and_keep_what_was_made(built, tmp_path, capsys):
    root, args = built
    from logo.tiers import check_ordered, existing, pick_medium

    capsys.readouterr()
    assert main([*args, "--min_expert_win_rate", "0.99"]) == 2  # a tiny run never wins
    err = capsys.readouterr().err
    assert "min_expert_win_rate" in err and "kept" in err and (root / "learned/mixed.zarr").exists()
    with pytest.raises(LogoError, match="already exists and was not made from this behaviour run"):
        existing(root / "learned/expert.zarr", "another/final.ckpt", 1)
    index = {"snapshots": [{"threshold": 0.5, "eval_return": 0.6, "iteration": 3}], "unreached": [1.0, 1.5]}
    with pytest.raises(LogoError, match=r"medium_fraction: no snapshot reached 0.5 x .* = 0.900.*never reached"):
        pick_medium(index, 0.9, 0.5, {"env_steps": 1000})
    medium = {"checkpoint": "run/snapshots/return-2000.ckpt", "eval_return": 2102.0, "env_steps": 85000}
    with pytest.raises(LogoError, match=r"medium: the medium tier \(run/snapshots/return-2000.ckpt, eval return "
                                        r"2102.000 at 85000 env steps\) returns 2057.600, not below the expert "
                                        r"tier's 1433.400 \(the final policy at 150000 env steps\).*kept m.zarr"):
        check_ordered({"return_mean": 2057.6}, {"return_mean": 1433.4}, medium, {"env_steps": 150000},
                      Path("m.zarr"))
    check_ordered({"return_mean": 700.0}, {"return_mean": 1433.4}, medium, {"env_steps": 150000}, Path("m.zarr"))
    bad = yaml.safe_load(CONFIG.read_text())
    bad["data"]["init_args"]["scenario"] = "3m_vs_nobody"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["tiers", "--behaviour", json.dumps([str(tmp_path / "bad.yaml")]), "--out",
                 str(tmp_path / "out")]) == 2
    assert "smax scenario" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_greedy_expert_plays_the_final_policys_greedy_actions(built, tmp_path, capsys):
    """expert_acting: greedy records the final policy's argmax over legal actions; the other tiers stay as learned,
    and a rebuild asking for the other way of acting names the field instead of skipping."""
    root, args = built
    from logo.data.reader import OfflineDataset
    from logo.policy.checkpoint import load_policy
    from logo.tiers import GREEDY_NOTE

    out = tmp_path / "greedy"
    greedy = [*args, "--expert_acting", "greedy"]
    greedy[greedy.index("--out") + 1] = str(out)
    assert main(greedy) == 0  # the behaviour run is reused: training is skipped
    expert = OfflineDataset.load(out / "expert.zarr")
    made = expert.attrs["provenance"]
    assert made["acting"] == GREEDY_NOTE and "acting greedily" in expert.spec.behaviour
    assert OfflineDataset.load(out / "medium.zarr").attrs["provenance"]["acting"] != GREEDY_NOTE
    module = load_policy(made["behaviour_checkpoint"])
    arrays = expert.arrays
    with torch.no_grad():
        replayed = module.act(torch.as_tensor(arrays["observations"]), torch.as_tensor(arrays["avail_actions"]))
    assert torch.equal(replayed, torch.as_tensor(arrays["actions"]).long())  # every recorded action is the argmax
    sampled = OfflineDataset.load(root / "learned/expert.zarr").arrays
    with torch.no_grad():
        again = module.act(torch.as_tensor(sampled["observations"]), torch.as_tensor(sampled["avail_actions"]))
    assert not torch.equal(again, torch.as_tensor(sampled["actions"]).long())  # the default samples
    capsys.readouterr()
    behaviour = [*greedy[:-2], "--expert_acting", "behaviour"]
    assert main(behaviour) == 2
    assert "expert_acting" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the parser names the key and the values it accepts
        main([*greedy[:-2], "--expert_acting", "sampled"])
    assert "expert_acting" in capsys.readouterr().err


@pytest.mark.slow
def test_an_interrupted_build_resumes_from_last_ckpt(tmp_path, capfd):
    pytest.importorskip("jaxmarl")
    thresholds = [0.0, 0.1, 0.2]
    plain = behaviour_override(tmp_path, total_steps=500, thresholds=thresholds)
    interrupted = tmp_path / "interrupted.yaml"
    cfg = yaml.safe_load(plain.read_text())
    cfg["trainer"]["callbacks"].append({"class_path": "tests.online.interrupt.Interrupt",
                                        "init_args": {"after": 2, "counter": "iterations"}})
    interrupted.write_text(yaml.safe_dump(cfg))
    base = ["tiers", "--out", str(tmp_path / "learned"), "--episodes", "8", "--num_envs", str(NUM_ENVS),
            "--reference_episodes", "8", "--require_ordered", "false"]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        main([*base, "--behaviour", json.dumps([str(CONFIG), str(interrupted)])])
    assert (tmp_path / "run/checkpoints/last.ckpt").is_file() and not (tmp_path / "learned").exists()
    capfd.readouterr()
    assert main([*base, "--behaviour", json.dumps([str(CONFIG), str(plain)])]) == 0
    assert "resuming the interrupted run" in capfd.readouterr().out
    final = json.loads((tmp_path / "run/snapshots/index.json").read_text())["final"]
    assert final["env_steps"] >= 500
    assert len(list((tmp_path / "run/played").glob("*.npz"))) == final["iteration"]


@pytest.mark.slow
def test_a_short_fit_beats_random_in_smax_3m(tmp_path):
    """25k env steps (about 50 iterations of 32 copies) lift the sampled policy well above random behaviour."""
    pytest.importorskip("jaxmarl")
    from logo.envs.references import reference_returns

    override = behaviour_override(tmp_path, total_steps=25_000, thresholds=[1.0], hidden=[64, 64], eval_every=5)
    cfg = yaml.safe_load(override.read_text())
    cfg["model"]["init_args"].update({"epochs": 4, "minibatches": 4, "eval_episodes": 32})
    cfg["data"]["init_args"]["num_envs"] = 32
    override.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(CONFIG), "--config", str(override)]) == 0
    final = json.loads((tmp_path / "run/snapshots/index.json").read_text())["final"]
    random = reference_returns("smax", "3m")["random"]  # 0.18
    assert final["eval_return"] > random + 0.3, final
