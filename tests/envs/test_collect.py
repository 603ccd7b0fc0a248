"""logo collect and logo data merge on real MaMuJoCo episodes (MPE/SMAX tiers: test_tiers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("gymnasium_robotics", reason="needs the 'mamujoco' extra")

from logo.cli import main  # noqa: E402
from logo.collect import collect  # noqa: E402
from logo.data.merge import merge_datasets  # noqa: E402
from logo.data.reader import OfflineDataset  # noqa: E402
from logo.data.validate import validate_dataset  # noqa: E402
from logo.envs import make_env  # noqa: E402
from logo.errors import LogoError  # noqa: E402


def small(tmp_path, name, **kw):
    args = {"env": "mamujoco", "scenario": "Hopper-3x1", "behaviour": "random", "quality": "random",
            "out": str(tmp_path / name), "episodes": 6, "progress": False, **kw}
    return collect(**args)


def test_collected_dataset_is_valid_and_describes_itself(hopper_random):
    assert validate_dataset(hopper_random) == []
    data = OfflineDataset.load(hopper_random)
    spec, attrs = data.spec, data.attrs
    assert (spec.env_family, spec.scenario, spec.quality, spec.source) == ("mamujoco", "Hopper-3x1", "random",
                                                                          "logo collect")
    assert spec.behaviour == "uniform random legal actions"
    assert spec.extra["env_options"] == {} and spec.extra["max_steps"] == 1000
    col = attrs["collection"]
    assert col["episodes"] == data.n_episodes == 30 and col["transitions"] == data.n_transitions
    assert col["return_mean"] == pytest.approx(float(data.episode_returns().mean()), rel=1e-5)
    assert col["num_envs"] == 3 and col["seed"] == 0 and col["transitions_per_second"] > 0
    np.testing.assert_array_equal(data.arrays["obs_mask"], make_env("mamujoco", "Hopper-3x1").spec.obs_mask)
    # random Hopper falls: every episode terminates, none is truncated
    assert data.arrays["terminals"].sum() == 30 and not data.arrays["truncations"].any()
    padded = data.arrays["observations"][:, ~data.arrays["obs_mask"]]
    assert (padded == 0).all()


def test_same_seed_same_dataset_other_seed_differs(tmp_path):
    a = OfflineDataset.load(small(tmp_path, "a.zarr", seed=1)["path"])
    b = OfflineDataset.load(small(tmp_path, "b.zarr", seed=1)["path"])
    c = OfflineDataset.load(small(tmp_path, "c.zarr", seed=2)["path"])
    for key in ("observations", "state", "actions", "rewards", "terminals", "final_state"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert not np.array_equal(a.arrays["state"][:5], c.arrays["state"][:5])


def test_transition_budget_stops_after_the_episode_that_reaches_it(tmp_path):
    summary = small(tmp_path, "budget.zarr", episodes=1000, transitions=60)
    data = OfflineDataset.load(summary["path"])
    lengths = np.diff(data.episode_bounds())
    assert data.n_transitions >= 60 and data.n_transitions - lengths[-1] < 60
    assert summary["transitions"] == data.n_transitions


def test_command_line_and_config_file(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    args = ["collect", "--env", "mamujoco", "--scenario", "HalfCheetah-2x3", "--behaviour", "random",
            "--quality", "random", "--episodes", "2", "--seed", "3", "--out", str(out), "--no_progress",
            "--env_options", '{"max_episode_steps": 15}']
    assert main(args) == 0
    assert f"wrote {out}: 2 episodes, 30 transitions" in capsys.readouterr().out
    assert main(args) == 2  # exists: refused without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    config = tmp_path / "collect.yaml"
    config.write_text(yaml.safe_dump({"env": "mamujoco", "scenario": "HalfCheetah-2x3", "behaviour": "random",
                                      "quality": "random", "episodes": 2, "seed": 3, "progress": False,
                                      "out": str(tmp_path / "from_config.zarr"),
                                      "env_options": {"max_episode_steps": 15}}))
    assert main(["collect", "--config", str(config)]) == 0
    first, second = OfflineDataset.load(out), OfflineDataset.load(tmp_path / "from_config.zarr")
    np.testing.assert_array_equal(first.arrays["actions"], second.arrays["actions"])
    assert second.spec.extra["env_options"] == {"max_episode_steps": 15}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"quality": "mixed"}, "logo data merge"),
    ({"quality": "great"}, "quality: expected one of"),
    ({"epsilon": 0.2}, "random behaviour is already uniformly random"),
    ({"behaviour": "checkpoint"}, "needs --checkpoint"),
    ({"behaviour": "scripted"}, "no scripted expert for mamujoco"),
    ({"episodes": 0}, "episodes: expected at least 1"),
    ({"epsilon": 1.5, "behaviour": "scripted"}, r"epsilon: expected a probability"),
    ({"env": "atari"}, "env family: expected one of"),
    ({"checkpoint": "x.ckpt"}, "only used with --behaviour checkpoint"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(LogoError, match=message):
        small(tmp_path, "bad.zarr", **kwargs)
    assert not (tmp_path / "bad.zarr").exists()


def test_checkpoint_behaviour_and_annealed_medium_replay(tmp_path, hopper_bc_checkpoint):
    greedy = small(tmp_path, "greedy.zarr", behaviour="checkpoint", checkpoint=str(hopper_bc_checkpoint),
                   quality="expert")
    data = OfflineDataset.load(greedy["path"])
    assert str(hopper_bc_checkpoint) in data.spec.behaviour and validate_dataset(greedy["path"]) == []
    replay = small(tmp_path, "replay.zarr", behaviour="checkpoint", checkpoint=str(hopper_bc_checkpoint),
                   quality="medium-replay", epsilon=0.1, num_envs=2)
    assert replay["epsilon_schedule"].startswith("linear from 1.0")
    assert "annealed linearly from 1.0 to 0.1" in OfflineDataset.load(replay["path"]).spec.behaviour
    with pytest.raises(LogoError, match="does not fit mamujoco/HalfCheetah-2x3"):
        small(tmp_path, "wrong.zarr", scenario="HalfCheetah-2x3", behaviour="checkpoint",
              checkpoint=str(hopper_bc_checkpoint))
    with pytest.raises(LogoError, match="no such file"):
        small(tmp_path, "none.zarr", behaviour="checkpoint", checkpoint=str(tmp_path / "missing.ckpt"))


def test_merge_builds_mixed_tier_and_refuses_other_scenarios(tmp_path, hopper_random, capsys):
    other = small(tmp_path, "other.zarr", seed=9)["path"]
    out = tmp_path / "mixed.zarr"
    assert main(["data", "merge", str(hopper_random), other, "--out", str(out), "--quality", "mixed"]) == 0
    mixed, a, b = OfflineDataset.load(out), OfflineDataset.load(hopper_random), OfflineDataset.load(other)
    assert mixed.n_episodes == a.n_episodes + b.n_episodes and mixed.spec.quality == "mixed"
    np.testing.assert_array_equal(mixed.arrays["rewards"], np.concatenate([a.arrays["rewards"], b.arrays["rewards"]]))
    np.testing.assert_array_equal(mixed.arrays["final_state"][a.n_episodes:], b.arrays["final_state"])
    assert [p["episodes"] for p in mixed.attrs["merged_from"]] == [30, 6]
    assert mixed.spec.extra["env_options"] == {}
    cheetah = small(tmp_path, "cheetah.zarr", scenario="HalfCheetah-2x3", episodes=1,
                    env_options={"max_episode_steps": 5})["path"]
    with pytest.raises(LogoError, match="does not match.*scenario"):
        merge_datasets([str(hopper_random), cheetah], str(tmp_path / "bad.zarr"), "mixed")
    with pytest.raises(LogoError, match="at least two"):
        merge_datasets([str(hopper_random)], str(tmp_path / "bad.zarr"), "mixed")
