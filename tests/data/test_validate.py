"""The dataset validator against real corrupted datasets on disk, one group of cases per kind of error.

Every case copies a session fixture dataset into ``tmp_path`` (the fixtures stay read-only),
corrupts the copy through zarr, and checks that :func:`validate_dataset` reports a problem that
names the array (or attribute) at fault and says what was expected. The same cases are then run
through ``logo data validate`` (exit code 1, array named on stderr) and ``OfflineDataset.load``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from logo.cli import main as logo_main
from logo.data.reader import OfflineDataset
from logo.data.validate import validate_dataset
from logo.errors import DatasetError


@dataclass(frozen=True)
class Case:
    """One corruption and what the validator must say about it.

    ``source`` is the fixture dataset to copy ("discrete" or "continuous"); ``corrupt`` then gets the
    copy opened with mode="r+". With ``source=None`` there is nothing to copy and ``corrupt`` gets the
    (not yet existing) target path to build a non-dataset at. ``expected`` lists substrings that must
    all appear in a single problem; ``name`` is what that problem must start with (the array or
    attribute at fault), and what the CLI must print on stderr. With ``only`` the problem list must
    hold exactly that one problem.
    """

    source: str | None
    corrupt: Callable[[Any], None]
    name: str
    expected: tuple[str, ...]
    only: bool = True


@pytest.fixture
def datasets(discrete_dataset: Path, continuous_dataset: Path) -> dict[str, Path]:
    return {"discrete": discrete_dataset, "continuous": continuous_dataset}


def build(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> Path:
    """The corrupted dataset of ``case``, under ``tmp_path``."""
    path = tmp_path / "corrupt.zarr"
    if case.source is None:
        case.corrupt(path)
    else:
        shutil.copytree(datasets[case.source], path)
        case.corrupt(zarr.open_group(str(path), mode="r+"))
    return path


def check(case: Case, problems: list[str]) -> str:
    """Assert that ``problems`` reports ``case``; returns the matching problem."""
    matches = [p for p in problems if all(s in p for s in case.expected)]
    assert matches, f"no problem contains all of {case.expected!r}; got {problems!r}"
    assert matches[0].startswith(case.name), f"problem does not start by naming {case.name!r}: {matches[0]!r}"
    if case.only:
        assert problems == matches[:1], f"expected only the problem about {case.name}, got {problems!r}"
    return matches[0]


def run_case(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> str:
    return check(case, validate_dataset(build(case, tmp_path, datasets)))


def params(cases: dict[str, Case]) -> list[Any]:
    return [pytest.param(case, id=key) for key, case in cases.items()]


# --- helpers that corrupt an opened group ----------------------------------------------------------


def rewrite(group: zarr.Group, name: str, data: np.ndarray) -> None:
    """Replace array ``name`` by ``data`` (any shape and dtype)."""
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, overwrite=True)
    if data.size:
        arr[...] = data


def transform(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[zarr.Group], None]:
    """Corruption that rewrites array ``name`` as ``fn(current values)``."""
    return lambda g: rewrite(g, name, np.asarray(fn(g[name][...])))


def set_values(name: str, index: Any, value: Any) -> Callable[[zarr.Group], None]:
    """Corruption that writes ``value`` at ``index`` of array ``name`` in place."""

    def corrupt(g: zarr.Group) -> None:
        g[name][index] = value

    return corrupt


def set_attrs(**attrs: Any) -> Callable[[zarr.Group], None]:
    return lambda g: g.attrs.update(attrs)


def delete(name: str) -> Callable[[zarr.Group], None]:
    def corrupt(g: zarr.Group) -> None:
        del g[name]

    return corrupt


def delete_attr(key: str) -> Callable[[zarr.Group], None]:
    def corrupt(g: zarr.Group) -> None:
        del g.attrs[key]

    return corrupt


def empty(*, steps: bool, episodes: bool) -> Callable[[zarr.Group], None]:
    """Corruption that truncates every per-step and/or per-episode array to length 0."""

    def corrupt(g: zarr.Group) -> None:
        t, e = g["rewards"].shape[0], g["episode_starts"].shape[0]
        for name in list(g.array_keys()):
            arr = g[name]
            if (steps and arr.shape[0] == t) or (episodes and arr.shape[0] == e and name != "obs_mask"):
                rewrite(g, name, np.zeros((0, *arr.shape[1:]), arr.dtype))
        g.attrs.update(n_transitions=0 if steps else t, n_episodes=0 if episodes else e)

    return corrupt


def last_step_of_episode(g: zarr.Group, episode: int) -> int:
    starts = g["episode_starts"][...]
    return int(starts[episode + 1] - 1) if episode + 1 < len(starts) else g["rewards"].shape[0] - 1


def set_episode_end(episode: int, flag: bool) -> Callable[[zarr.Group], None]:
    """Set both terminals and truncations to ``flag`` at the episode's last step."""
    def corrupt(g: zarr.Group) -> None:
        t = last_step_of_episode(g, episode)
        g["terminals"][t] = flag
        g["truncations"][t] = flag

    return corrupt


def forbid_taken_action(t: int, agent: int) -> Callable[[zarr.Group], None]:
    """Mark the action agent ``agent`` took at step ``t`` illegal, leaving its other actions legal."""

    def corrupt(g: zarr.Group) -> None:
        a = int(g["actions"][t, agent])
        avail = g["avail_actions"][t, agent]
        avail[a] = False
        assert avail.any(), "the fixture should leave another legal action"
        g["avail_actions"][t, agent] = avail

    return corrupt


def pad_feature(agent: int, feature: int, zero: tuple[str, ...] = ()) -> Callable[[zarr.Group], None]:
    """Mark one observation feature of ``agent`` as padding (obs_mask False) without zeroing the data,
    except in the arrays listed in ``zero``."""

    def corrupt(g: zarr.Group) -> None:
        g["obs_mask"][agent, feature] = False
        for name in zero:
            g[name][:, agent, feature] = 0.0
        for name in ("observations", "final_observations"):
            if name not in zero:
                assert (g[name][:, agent, feature] != 0).any(), "the fixture should have non-zero data there"

    return corrupt


def reorder_starts(i: int) -> Callable[[np.ndarray], np.ndarray]:
    def fn(starts: np.ndarray) -> np.ndarray:
        starts = starts.copy()
        starts[i], starts[i + 1] = starts[i + 1], starts[i]
        return starts

    return fn


# Facts about the fixtures the expected messages rely on (checked in test_fixture_facts).
T_DISCRETE = 1183
N_AGENTS, OBS_DIM, N_ACTIONS = 3, 12, 5


def test_fixture_facts(discrete_dataset: Path, continuous_dataset: Path) -> None:
    g = zarr.open_group(str(discrete_dataset), mode="r")
    assert g["rewards"].shape[0] == T_DISCRETE and g["episode_starts"].shape[0] == 60
    assert (g.attrs["n_agents"], g.attrs["obs_dim"], g.attrs["n_actions"]) == (N_AGENTS, OBS_DIM, N_ACTIONS)
    starts = g["episode_starts"][...]
    assert starts[1] == 25 and np.diff(np.append(starts, T_DISCRETE)).min() >= 2  # episode 0 ends at step 24
    c = zarr.open_group(str(continuous_dataset), mode="r")
    assert (c.attrs["action_low"], c.attrs["action_high"]) == ([-1.0, -1.0], [1.0, 1.0])


# --- valid datasets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["discrete", "continuous"])
def test_valid_dataset_has_no_problems(source: str, datasets: dict[str, Path], capsys) -> None:
    path = datasets[source]
    assert validate_dataset(path) == []
    assert logo_main(["data", "validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and out.err == ""


def test_actions_on_the_bounds_within_tolerance_are_valid(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """float32 rounding at the bounds is not an error: the check allows 1e-5 of the action range."""
    case = Case("continuous", set_values("actions", (0, 0, 0), np.float32(1.0 + 1e-6)), "", ())
    assert validate_dataset(build(case, tmp_path, datasets)) == []


# --- 1. missing arrays ---------------------------------------------------------------------------------

MISSING = {
    "state": Case("discrete", delete("state"), "state",
                  ("state: missing array (required for discrete datasets)",)),
    "avail_actions": Case("discrete", delete("avail_actions"), "avail_actions",
                          ("avail_actions: missing array (required for discrete datasets)",)),
    "final_state-continuous": Case("continuous", delete("final_state"), "final_state",
                                   ("final_state: missing array (required for continuous datasets)",)),
    "obs_mask": Case("discrete", delete("obs_mask"), "obs_mask", ("obs_mask: missing array",)),
}


@pytest.mark.parametrize("case", params(MISSING))
def test_missing_array(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    path = build(case, tmp_path, datasets)
    assert not (path / case.name).exists()  # really gone from disk, not just from zarr's view
    check(case, validate_dataset(path))


# --- 2. wrong dtypes -----------------------------------------------------------------------------------

DTYPES = {
    "rewards-float64": Case("discrete", transform("rewards", lambda a: a.astype("float64")), "rewards",
                            ("rewards: expected dtype float32, got float64",)),
    "actions-int32": Case("discrete", transform("actions", lambda a: a.astype("int32")), "actions",
                          ("actions: expected dtype int64, got int32",)),
    "actions-float64-continuous": Case("continuous", transform("actions", lambda a: a.astype("float64")),
                                       "actions", ("actions: expected dtype float32, got float64",)),
    "terminals-int8": Case("discrete", transform("terminals", lambda a: a.astype("int8")), "terminals",
                           ("terminals: expected dtype bool, got int8",)),
    "episode_starts-int32": Case("discrete", transform("episode_starts", lambda a: a.astype("int32")),
                                 "episode_starts", ("episode_starts: expected dtype int64, got int32",)),
}


@pytest.mark.parametrize("case", params(DTYPES))
def test_wrong_dtype(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 3. wrong rank -------------------------------------------------------------------------------------

RANKS = {
    "rewards-T1": Case("discrete", transform("rewards", lambda a: a[:, None]), "rewards",
                       ("rewards: expected rank 1 with shape [T], got rank 2", f"({T_DISCRETE}, 1)")),
    "actions-TN1": Case("discrete", transform("actions", lambda a: a[..., None]), "actions",
                        ("actions: expected rank 2 with shape [T, 3]", f"got rank 3 with shape ({T_DISCRETE}, 3, 1)")),
    "actions-TN-continuous": Case("continuous", transform("actions", lambda a: a[..., 0]), "actions",
                                  ("actions: expected rank 3 with shape [T, 3, 2]", "got rank 2")),
    "state-flat": Case("discrete", transform("state", lambda a: a.ravel()), "state",
                       ("state: expected rank 2 with shape [T, 12], got rank 1",)),
}


@pytest.mark.parametrize("case", params(RANKS))
def test_wrong_rank(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 4. mismatched step / episode counts ---------------------------------------------------------------

LENGTHS = {
    "state-one-step-short": Case("discrete", transform("state", lambda a: a[:-1]), "state",
                                 (f"state: axis 0 has {T_DISCRETE - 1} entries, expected {T_DISCRETE} steps",
                                  "like actions")),
    "rewards-one-step-long": Case("continuous", transform("rewards", lambda a: np.append(a, a[-1:])), "rewards",
                                  ("rewards: axis 0 has", "entries, expected", "steps like actions")),
    "final_state-one-episode-short": Case("discrete", transform("final_state", lambda a: a[:-1]), "final_state",
                                          ("final_state: axis 0 has 59 entries, expected 60 episodes",
                                           "like episode_starts")),
}


@pytest.mark.parametrize("case", params(LENGTHS))
def test_mismatched_lengths(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


@pytest.mark.parametrize("name", ["actions", "episode_starts"])
def test_mismatched_length_blames_the_odd_array(name: str, tmp_path: Path, datasets: dict[str, Path]) -> None:
    case = Case("discrete", transform(name, lambda a: a[:-1]), name, (f"{name}: axis 0 has",), only=False)
    problems = validate_dataset(build(case, tmp_path, datasets))
    check(case, problems)
    assert all(p.startswith(f"{name}:") for p in problems), problems


# --- 5. sizes that disagree with the attributes --------------------------------------------------------

DIMS = {
    "attr-n_agents": Case("discrete", set_attrs(n_agents=4), "observations",
                          ("observations: expected shape [T, 4, 12], got", "(axis 1 should be 4 per the dataset "
                                                                          "attributes)"), only=False),
    "observations-obs_dim": Case("discrete", transform("observations", lambda a: np.pad(a, ((0, 0),) * 2 + ((0, 1),))),
                                 "observations", ("observations: expected shape [T, 3, 12]",
                                                  f"got ({T_DISCRETE}, 3, 13)", "(axis 2 should be 12")),
    "attr-n_actions": Case("discrete", set_attrs(n_actions=6), "avail_actions",
                           ("avail_actions: expected shape [T, 3, 6]", "(axis 2 should be 6"), only=False),
    "attr-state_dim": Case("continuous", set_attrs(state_dim=10), "final_state",
                           ("final_state: expected shape [E, 10]", "(axis 1 should be 10"), only=False),
    "obs_mask-shape": Case("discrete", transform("obs_mask", lambda a: a[:, :-1]), "obs_mask",
                           ("obs_mask: expected shape [3, 12], got (3, 11)",)),
    "attr-n_transitions": Case("discrete", set_attrs(n_transitions=1000), "attribute 'n_transitions'",
                               (f"attribute 'n_transitions': says 1000, arrays hold {T_DISCRETE}",)),
    "attr-n_episodes": Case("continuous", set_attrs(n_episodes=61), "attribute 'n_episodes'",
                            ("attribute 'n_episodes': says 61, arrays hold 60",)),
}


@pytest.mark.parametrize("case", params(DIMS))
def test_sizes_disagree_with_attributes(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 6. NaN and inf --------------------------------------------------------------------------------------

NONFINITE = {
    "observations-nan": Case("discrete", set_values("observations", (3, 1, 2), np.nan), "observations",
                             ("observations: 1 NaN/inf values, first at index (3, 1, 2) (expected finite numbers)",)),
    "rewards-inf": Case("discrete", set_values("rewards", 7, np.inf), "rewards",
                        ("rewards: 1 NaN/inf values, first at index (7,)", "expected finite")),
    "rewards-neg-inf-continuous": Case("continuous", set_values("rewards", slice(4, 6), -np.inf), "rewards",
                                       ("rewards: 2 NaN/inf values, first at index (4,)",)),
    "actions-nan-continuous": Case("continuous", set_values("actions", (2, 0, 1), np.nan), "actions",
                                   ("actions: 1 NaN/inf values, first at index (2, 0, 1)",)),
    "final_state-nan": Case("discrete", set_values("final_state", (5, 0), np.nan), "final_state",
                            ("final_state: 1 NaN/inf values, first at index (5, 0)",)),
}


@pytest.mark.parametrize("case", params(NONFINITE))
def test_nan_and_inf(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 7. empty datasets ---------------------------------------------------------------------------------

EMPTY = {
    "no-steps-no-episodes": Case("discrete", empty(steps=True, episodes=True), "observations",
                                 ("observations: empty dataset (0 steps in 0 episodes)",)),
    "no-episodes": Case("continuous", empty(steps=False, episodes=True), "episode_starts",
                        ("episode_starts: empty dataset (", "steps in 0 episodes)")),
    "no-steps": Case("discrete", empty(steps=True, episodes=False), "observations",
                     ("empty dataset (0 steps in 60 episodes)",)),
}


@pytest.mark.parametrize("case", params(EMPTY))
def test_empty_dataset(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 8. episode boundaries -----------------------------------------------------------------------------

BOUNDARIES = {
    "start-at-T": Case("discrete", set_values("episode_starts", -1, T_DISCRETE), "episode_starts",
                       (f"episode_starts: values must lie in [0, {T_DISCRETE})", f"got range [0, {T_DISCRETE}]")),
    "start-beyond-T": Case("discrete", set_values("episode_starts", -1, 10**6), "episode_starts",
                           ("episode_starts: values must lie in [0,", "1000000]")),
    "first-not-zero": Case("discrete", set_values("episode_starts", 0, 1), "episode_starts",
                           ("episode_starts: first episode must start at step 0, got 1",)),
    "negative-first": Case("continuous", set_values("episode_starts", 0, -5), "episode_starts",
                           ("episode_starts: first episode must start at step 0, got -5",), only=False),
    "not-increasing": Case("discrete", transform("episode_starts", reorder_starts(3)), "episode_starts",
                           ("episode_starts: expected strictly increasing starts", "at episodes 3, 4")),
    "duplicate": Case("discrete", set_values("episode_starts", 2, 25), "episode_starts",
                      ("episode_starts: expected strictly increasing starts, got 25 then 25 at episodes 1, 2",)),
}


@pytest.mark.parametrize("case", params(BOUNDARIES))
def test_episode_boundaries(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 9. no legal action --------------------------------------------------------------------------------

NO_LEGAL = {
    "step": Case("discrete", set_values("avail_actions", (10, 2), False), "avail_actions",
                 ("avail_actions: 1 (step, agent) pairs with no legal action although an action was taken",
                  "agent 2 at step 10"), only=False),
    "final": Case("discrete", set_values("final_avail_actions", (0, 1), False), "final_avail_actions",
                  ("final_avail_actions: 1 (episode, agent) pairs with no legal action after a truncated episode",
                   "agent 1 after episode 0")),
}


def test_no_legal_action_after_a_terminated_episode_is_valid(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """Nothing follows a termination, so environments may mark every action illegal there."""
    path = tmp_path / "copy.zarr"
    shutil.copytree(datasets["discrete"], path)
    group = zarr.open_group(str(path), mode="r+")
    assert group["terminals"][last_step_of_episode(group, 4)]  # fixture facts
    assert group["truncations"][last_step_of_episode(group, 0)]
    final = group["final_avail_actions"][...]
    final[4] = False
    group["final_avail_actions"][...] = final
    assert validate_dataset(path) == []


@pytest.mark.parametrize("case", params(NO_LEGAL))
def test_no_legal_action(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 10. illegal actions -------------------------------------------------------------------------------

ILLEGAL = {
    "step-10-agent-2": Case("discrete", forbid_taken_action(10, 2), "actions",
                            ("actions: 1 actions marked illegal by avail_actions, e.g. agent 2 at step 10 took",)),
    "last-step": Case("discrete", forbid_taken_action(T_DISCRETE - 1, 0), "actions",
                      (f"marked illegal by avail_actions, e.g. agent 0 at step {T_DISCRETE - 1}",)),
}


@pytest.mark.parametrize("case", params(ILLEGAL))
def test_illegal_action(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    problem = run_case(case, tmp_path, datasets)
    assert "no legal action" not in problem


# --- 11. discrete actions out of range -----------------------------------------------------------------

OUT_OF_RANGE = {
    "negative": Case("discrete", set_values("actions", (5, 0), -1), "actions",
                     (f"actions: 1 out of range [0, {N_ACTIONS}), e.g. agent 0 at step 5 took -1",)),
    "n_actions": Case("discrete", set_values("actions", (8, 2), N_ACTIONS), "actions",
                      (f"actions: 1 out of range [0, {N_ACTIONS}), e.g. agent 2 at step 8 took {N_ACTIONS}",)),
    "huge": Case("discrete", set_values("actions", slice(0, 2), 2**40), "actions",
                 ("actions: 6 out of range", f"took {2**40}")),
}


@pytest.mark.parametrize("case", params(OUT_OF_RANGE))
def test_discrete_action_out_of_range(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 12. continuous actions outside the bounds ---------------------------------------------------------

OUT_OF_BOUNDS = {
    "above-high": Case("continuous", set_values("actions", (5, 1, 0), 1.5), "actions",
                       ("actions: 1 values outside the bounds [action_low, action_high]",
                        "agent 1 at step 5, dimension 0: 1.5 not in [-1.0, 1.0]")),
    "below-low": Case("continuous", set_values("actions", (9, 2, 1), -3.0), "actions",
                      ("agent 2 at step 9, dimension 1: -3.0 not in [-1.0, 1.0]",)),
    "narrowed-bounds": Case("continuous", set_attrs(action_low=[-0.25, -0.25], action_high=[0.25, 0.25]),
                            "actions", ("actions:", "values outside the bounds [action_low, action_high]",
                                        "not in [-0.25, 0.25]")),
}


@pytest.mark.parametrize("case", params(OUT_OF_BOUNDS))
def test_continuous_action_out_of_bounds(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 13. terminals / truncations -----------------------------------------------------------------------

ENDS = {
    "terminal-inside": Case("discrete", set_values("terminals", 0, True), "terminals/truncations",
                            ("terminals/truncations: set inside an episode at steps 0",
                             "expected only at each episode's last step")),
    "truncation-inside": Case("continuous", set_values("truncations", slice(1, 6), True), "terminals/truncations",
                              ("set inside an episode at steps 1, 2, 3 and 2 more",)),
    "missing-end": Case("discrete", set_episode_end(0, False), "terminals/truncations",
                        ("terminals/truncations: episode ending at steps 24 is neither terminated nor truncated",)),
    "missing-end-last-episode": Case("discrete", set_episode_end(59, False), "terminals/truncations",
                                     (f"episode ending at steps {T_DISCRETE - 1} is neither",)),
    "both-set": Case("discrete", set_episode_end(0, True), "terminals/truncations",
                     ("terminals/truncations: both set at steps 24 (expected at most one)",)),
}


@pytest.mark.parametrize("case", params(ENDS))
def test_episode_ends(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 14. not a dataset at all --------------------------------------------------------------------------


def nothing(path: Path) -> None:
    pass


def write_text_file(path: Path) -> None:
    path.write_text("not a dataset\n")


def plain_group(path: Path) -> None:
    zarr.open_group(str(path), mode="w").attrs.update(description="some other zarr group")


def plain_array(path: Path) -> None:
    zarr.create_array(str(path), shape=(3,), dtype="float32")


NOT_A_DATASET = {
    "nonexistent": Case(None, nothing, "", ("corrupt.zarr: no such file or directory",
                                            "(expected a logo zarr dataset)")),
    "empty-folder": Case(None, Path.mkdir, "", ("corrupt.zarr: not a readable zarr group",)),
    "text-file": Case(None, write_text_file, "", ("corrupt.zarr: not a readable zarr group",)),
    "zarr-array": Case(None, plain_array, "", ("corrupt.zarr: not a readable zarr group",)),
    "zarr-group-without-format": Case(None, plain_group, "attribute 'format'",
                                      ("attribute 'format': expected 'logo-marl-dataset'", "got None")),
    "wrong-format": Case("discrete", set_attrs(format="other-format"), "attribute 'format'",
                         ("expected 'logo-marl-dataset' (a dataset written by logo), got 'other-format'",)),
    "action_kind-foo": Case("discrete", set_attrs(action_kind="foo"), "attribute 'action_kind'",
                            ("attribute 'action_kind': expected 'discrete' or 'continuous', got 'foo'",)),
    "n_actions-missing": Case("discrete", delete_attr("n_actions"), "attribute 'n_actions'",
                              ("attribute 'n_actions': expected a positive integer for discrete actions, got None",)),
    "n_agents-zero": Case("discrete", set_attrs(n_agents=0), "attribute 'n_agents'",
                          ("attribute 'n_agents': expected a positive integer, got 0",)),
    "obs_dim-string": Case("continuous", set_attrs(obs_dim="12"), "attribute 'obs_dim'",
                           ("attribute 'obs_dim': expected a positive integer, got '12'",)),
    "format_version": Case("discrete", set_attrs(format_version=2), "attribute 'format_version'",
                           ("attribute 'format_version': this logo reads version 1, got 2",)),
    "action_dim-missing": Case("continuous", delete_attr("action_dim"), "attribute 'action_dim'",
                               ("attribute 'action_dim': expected a positive integer for continuous actions",)),
    "action_low-length": Case("continuous", set_attrs(action_low=[-1.0]), "attribute 'action_low'",
                              ("attribute 'action_low': expected a list of 2 finite numbers, got [-1.0]",)),
    "bounds-crossed": Case("continuous", set_attrs(action_low=[1.0, -1.0]), "attributes 'action_low'/'action_high'",
                           ("expected low < high in every dimension",)),
}


@pytest.mark.parametrize("case", params(NOT_A_DATASET))
def test_not_a_dataset(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    problem = run_case(case, tmp_path, datasets)
    if case.source is None and not case.name:
        assert problem.startswith(str(tmp_path / "corrupt.zarr"))  # names the path at fault


BAD_BOUNDS = {
    "low-None": Case("continuous", set_attrs(action_low=[None, -1.0]), "attribute 'action_low'",
                     ("attribute 'action_low': expected a list of 2 finite numbers",), only=False),
    "strings": Case("continuous", set_attrs(action_low=["a", "b"], action_high=["c", "d"]), "attribute 'action_low'",
                    ("attribute 'action_low': expected a list of 2 finite numbers",), only=False),
    "low-nan": Case("continuous", set_attrs(action_low=[float("nan"), -1.0]), "attribute 'action_low'",
                    ("attribute 'action_low'",), only=False),
}


@pytest.mark.parametrize("case", params(BAD_BOUNDS))
def test_non_numeric_action_bounds(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


def garble_chunk(g: zarr.Group) -> None:
    root = Path(str(g.store.root))
    chunks = [f for f in (root / "rewards").rglob("*") if f.is_file() and f.name != "zarr.json"]
    assert chunks
    chunks[0].write_bytes(b"not zstd")


def garble_metadata(g: zarr.Group) -> None:
    (Path(str(g.store.root)) / "rewards" / "zarr.json").write_text("{not json")


UNREADABLE = {
    "garbled-chunk": Case("discrete", garble_chunk, "rewards", ("rewards:",), only=False),
    "garbled-array-metadata": Case("discrete", garble_metadata, "rewards", ("rewards:",), only=False),
}


@pytest.mark.parametrize("case", params(UNREADABLE))
def test_unreadable_array(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


# --- 15. padded observation features -------------------------------------------------------------------

PADDING = {
    "observations-and-final": Case("discrete", pad_feature(0, OBS_DIM - 1), "observations",
                                   ("observations: non-zero values where obs_mask is False "
                                    "(padded features must be 0)",), only=False),
    "final-only": Case("continuous", pad_feature(2, 0, zero=("observations",)), "final_observations",
                       ("final_observations: non-zero values where obs_mask is False",)),
    "observations-only": Case("discrete", pad_feature(1, 3, zero=("final_observations",)), "observations",
                              ("observations: non-zero values where obs_mask is False",)),
}


@pytest.mark.parametrize("case", params(PADDING))
def test_padded_features_not_zero(case: Case, tmp_path: Path, datasets: dict[str, Path]) -> None:
    run_case(case, tmp_path, datasets)


def test_zeroed_padding_is_valid(tmp_path: Path, datasets: dict[str, Path]) -> None:
    case = Case("discrete", pad_feature(1, 3, zero=("observations", "final_observations")), "", ())
    assert validate_dataset(build(case, tmp_path, datasets)) == []


# --- the CLI and the reader on every case --------------------------------------------------------------

ALL_CASES = {
    f"{group}-{key}": case
    for group, cases in [("missing", MISSING), ("dtype", DTYPES), ("rank", RANKS), ("length", LENGTHS),
                         ("dims", DIMS), ("nonfinite", NONFINITE), ("empty", EMPTY), ("bounds", BOUNDARIES),
                         ("nolegal", NO_LEGAL), ("illegal", ILLEGAL), ("range", OUT_OF_RANGE),
                         ("continuous", OUT_OF_BOUNDS), ("ends", ENDS), ("notdataset", NOT_A_DATASET),
                         ("padding", PADDING)]
    for key, case in cases.items()
}


@pytest.mark.parametrize("case", params(ALL_CASES))
def test_cli_validate_fails(case: Case, tmp_path: Path, datasets: dict[str, Path], capsys) -> None:
    path = build(case, tmp_path, datasets)
    assert logo_main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert f"{path}: INVALID" in out.err
    assert case.name in out.err and case.expected[0] in out.err


READER_CASES = ["missing-state", "dtype-rewards-float64", "length-state-one-step-short", "nonfinite-rewards-inf",
                "bounds-start-at-T", "illegal-step-10-agent-2", "continuous-above-high", "ends-missing-end",
                "notdataset-nonexistent", "notdataset-action_kind-foo", "padding-final-only"]


@pytest.mark.parametrize("key", READER_CASES)
def test_reader_raises_dataset_error(key: str, tmp_path: Path, datasets: dict[str, Path]) -> None:
    case = ALL_CASES[key]
    path = build(case, tmp_path, datasets)
    with pytest.raises(DatasetError) as info:
        OfflineDataset.load(path)
    check(case, info.value.problems)
    assert info.value.problems == validate_dataset(path)
    assert str(path) in str(info.value) and case.expected[0] in str(info.value)


def test_reader_without_validation_skips_content_checks(tmp_path: Path, datasets: dict[str, Path]) -> None:
    """validate=False skips the value checks (not the structure checks), as documented."""
    path = build(ALL_CASES["nonfinite-rewards-inf"], tmp_path, datasets)
    assert np.isinf(OfflineDataset.load(path, validate=False).arrays["rewards"][7])
    shutil.rmtree(path)
    path = build(ALL_CASES["missing-state"], tmp_path, datasets)
    with pytest.raises(DatasetError, match="state: missing array"):
        OfflineDataset.load(path, validate=False)
