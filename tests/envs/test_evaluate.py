"""The evaluation routine, the EnvEvaluation callback and `logo evaluate`, in a real environment."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="needs the 'mamujoco' extra")

from logo.callbacks import EnvEvaluation  # noqa: E402
from logo.cli import main  # noqa: E402
from logo.envs import make_env  # noqa: E402
from logo.envs.evaluate import (  # noqa: E402
    dataset_env_target,
    evaluate_in_dataset_env,
    evaluate_policy,
    make_dataset_env,
    normalized_score,
)
from logo.envs.policies import ModulePolicy, RandomPolicy  # noqa: E402
from logo.errors import LogoError  # noqa: E402
from logo.policy.checkpoint import load_policy  # noqa: E402
from tests.envs.conftest import write_bc_config  # noqa: E402


def read_metrics(log_dir) -> list[dict[str, str]]:
    """Rows of every CSVLogger run under log_dir (fit, evaluate and test each make a version)."""
    rows = []
    for path in sorted(log_dir.rglob("metrics.csv")):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


def test_normalized_score():
    assert normalized_score(50.0, random_return=0.0, expert_return=200.0) == 25.0
    assert normalized_score(-10.0, random_return=-10.0, expert_return=30.0) == 0.0
    assert normalized_score(30.0, random_return=-10.0, expert_return=30.0) == 100.0
    with pytest.raises(LogoError, match="must differ"):
        normalized_score(1.0, 2.0, 2.0)


def test_same_seeds_same_numbers_for_any_batching(hopper_bc_checkpoint):
    module = load_policy(hopper_bc_checkpoint)
    results = []
    for num_envs in (1, 3):
        env = make_env("mamujoco", "Hopper-3x1", num_envs=num_envs)
        results.append(evaluate_policy(env, ModulePolicy(module, env.spec), episodes=5, seed=11))
    np.testing.assert_allclose(results[0].returns, results[1].returns, rtol=1e-6)
    assert results[0].seeds == list(range(11, 16))
    env = make_env("mamujoco", "Hopper-3x1")
    other = evaluate_policy(env, ModulePolicy(module, env.spec), episodes=5, seed=12)
    np.testing.assert_allclose(other.returns[:4], results[0].returns[1:], rtol=1e-6)  # seeds shifted by one
    metrics = evaluate_policy(env, RandomPolicy(env.spec), episodes=4, seed=0,
                              reference={"random": 0.0, "expert": 100.0}).metrics()
    again = evaluate_policy(env, RandomPolicy(env.spec, seed=123), episodes=4, seed=0).metrics()
    assert metrics["return_mean"] == again["return_mean"], "evaluation reseeds the policy"
    assert metrics["normalized_score"] == pytest.approx(metrics["return_mean"])
    assert metrics["return_min"] <= metrics["return_mean"] <= metrics["return_max"]
    assert "win_rate" not in metrics and metrics["episodes"] == 4


def test_evaluation_in_the_dataset_env_is_the_same_as_by_hand(hopper_random):
    from logo.data.validate import open_dataset

    _, spec = open_dataset(hopper_random)
    results, reference = evaluate_in_dataset_env(spec, [RandomPolicy, lambda s: RandomPolicy(s, 9)], episodes=3,
                                                 seed=5, num_envs=8)  # 3 copies: no more than episodes
    env = make_env("mamujoco", "Hopper-3x1", num_envs=3)
    by_hand = evaluate_policy(env, RandomPolicy(env.spec), episodes=3, seed=5)
    for result in results:
        assert result.seeds == [5, 6, 7] and result.reference is None
        np.testing.assert_array_equal(result.returns, by_hand.returns)
    assert reference == dataset_env_target(spec)[3]
    env, none = make_dataset_env(None, num_envs=2, family="mamujoco", scenario="Hopper-3x1")
    assert env.num_envs == 2 and none is None  # both named: the spec is not read
    env.close()


def test_callback_during_fit_and_test_and_logo_evaluate(tmp_path, hopper_random, capsys):
    callback = {"class_path": "EnvEvaluation", "init_args": {"episodes": 3, "num_envs": 3, "seed": 5,
                                                              "random_return": 0.0, "expert_return": 1000.0}}
    config = write_bc_config(tmp_path, hopper_random, max_steps=10, callbacks=[callback])
    assert main(["fit", "--config", str(config)]) == 0
    rows = [r for r in read_metrics(tmp_path / "logs") if r.get("eval/return_mean")]  # only fit has run
    assert len(rows) == 1
    logged = float(rows[0]["eval/return_mean"])
    # the logged number is what the trained weights score on the same seeds
    env = make_env("mamujoco", "Hopper-3x1", num_envs=3)
    direct = evaluate_policy(env, ModulePolicy(load_policy(tmp_path / "ckpt" / "last.ckpt"), env.spec),
                             episodes=3, seed=5)
    assert logged == pytest.approx(direct.metrics()["return_mean"], rel=1e-5)
    assert float(rows[0]["eval/normalized_score"]) == pytest.approx(logged / 10, rel=1e-5)

    capsys.readouterr()
    ckpt = str(tmp_path / "ckpt" / "last.ckpt")
    assert main(["evaluate", "--config", str(config), "--ckpt_path", ckpt, "--episodes", "3", "--seed", "5"]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("return_"))
    assert float(printed["return_mean"]) == pytest.approx(logged, rel=1e-3)
    evaluated = [r for r in read_metrics(tmp_path / "logs") if r.get("evaluate/return_mean")]
    assert float(evaluated[-1]["evaluate/return_mean"]) == pytest.approx(logged, rel=1e-5)
    assert main(["test", "--config", str(config), "--ckpt_path", ckpt]) == 0
    logged_test = [r for r in read_metrics(tmp_path / "logs") if r.get("test/env/return_mean")]
    assert float(logged_test[-1]["test/env/return_mean"]) == pytest.approx(logged, rel=1e-5)
    assert main(["evaluate", "--config", str(config), "--ckpt_path", str(tmp_path / "nope.ckpt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_callback_explains_datasets_without_an_environment(discrete_dataset):
    callback = EnvEvaluation()
    from logo.data.validate import open_dataset

    _, spec = open_dataset(discrete_dataset)
    with pytest.raises(LogoError, match="env_family 'synthetic' has no environment adapter"):
        callback.build(spec)
    with pytest.raises(LogoError, match="give both reference returns"):
        EnvEvaluation(random_return=1.0)


@pytest.mark.parametrize(("family", "scenario", "module"), [("mpe", "simple_spread_v3", "mpe2"),
                                                             ("smax", "3m", "jaxmarl")])
def test_scripted_policy_same_seeds_same_numbers(family, scenario, module):
    pytest.importorskip(module, reason=f"needs the '{family}' extra")
    from logo.envs import scripted_policy
    from logo.envs.policies import EpsilonPolicy
    from logo.envs.references import reference_returns

    env = make_env(family, scenario, num_envs=4)
    reference = reference_returns(family, scenario)
    policy = EpsilonPolicy(scripted_policy(env), env.spec, 0.3)  # randomness too: evaluation reseeds it
    first = evaluate_policy(env, policy, episodes=8, seed=3, reference=reference).metrics()
    second = evaluate_policy(env, policy, episodes=8, seed=3, reference=reference).metrics()
    assert first == second
    expert = evaluate_policy(env, scripted_policy(env), episodes=8, seed=3, reference=reference).metrics()
    assert expert["normalized_score"] > first["normalized_score"]
    assert ("win_rate" in first) == (family == "smax")


def test_reference_returns_of_scripted_and_learned_experts():
    from logo.envs.references import LEARNED_REFERENCE_RETURNS, REFERENCE_RETURNS, reference_returns
    from logo.errors import LogoError

    assert reference_returns("smax", "3m") is REFERENCE_RETURNS["smax/3m"]
    assert reference_returns("smax", "3m", expert="learned") is LEARNED_REFERENCE_RETURNS["smax/3m"]
    assert reference_returns("smax", "6h_vs_8z") is None  # no scripted measurement on that map
    for entry in LEARNED_REFERENCE_RETURNS.values():
        assert entry["random"] < entry["expert"]
    with pytest.raises(LogoError, match="expert: expected 'scripted' or 'learned'"):
        reference_returns("smax", "3m", expert="greedy")
