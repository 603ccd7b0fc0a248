"""Dataset validation. Every problem names the array (or attribute) at fault and what was expected.

Two passes: :func:`structure_problems` reads only metadata (attributes, shapes, dtypes) and
:func:`content_problems` checks values of arrays already in memory, so loading a dataset
reads each array once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from logo.data.schema import FORMAT_NAME, DatasetSpec, spec_problems
from logo.errors import DatasetError

MAX_REPORTED = 3  # positions listed per problem before "and N more"


def read_hint(path: str | Path) -> str:
    """The fix shown under the problems when a dataset cannot be read."""
    return (f"fix: check the path, or write the dataset again with `logo collect`, `logo data import` or "
            f"`logo data synth`; `logo data validate {path}` lists every problem")


def open_group(path: str | Path) -> tuple[zarr.Group | None, list[str]]:
    """Open a dataset group read-only; returns (group, problems)."""
    p = Path(path)
    if not p.exists():
        return None, [f"{p}: no such file or directory (expected a logo zarr dataset)"]
    if p.is_dir() and not any(p.iterdir()):
        return None, [f"{p}: not a readable zarr group (an empty folder; expected a logo zarr dataset)"]
    try:
        group = zarr.open_group(str(p), mode="r")
    except Exception as exc:  # zarr raises several types for non-groups and corrupt metadata
        return None, [f"{p}: not a readable zarr group ({type(exc).__name__}: {exc})"]
    return group, []


def structure_problems(group: zarr.Group) -> tuple[DatasetSpec | None, list[str]]:
    """Check attributes, presence, dtype and shape of every array without reading data."""
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT_NAME:
        return None, [f"attribute 'format': expected {FORMAT_NAME!r} (a dataset written by logo), "
                      f"got {attrs.get('format')!r}"]
    problems = spec_problems(attrs)
    if problems:
        return None, problems
    spec = DatasetSpec.from_attrs(attrs)
    try:
        present = set(group.array_keys())
    except Exception:  # some member's metadata is corrupt: find which, by opening each in turn
        return spec, _unreadable_members(group)
    for name in spec.required_arrays():
        if name not in present:
            problems.append(f"{name}: missing array (required for {spec.action_kind} datasets)")
    if problems:
        return spec, problems

    shapes, dtypes = spec.array_shapes(), spec.array_dtypes()
    metas = {}
    for name in sorted(present & set(shapes)):
        try:
            metas[name] = group[name]
        except Exception as exc:  # corrupt array metadata
            problems.append(f"{name}: unreadable array metadata ({type(exc).__name__}: {exc})")
    if problems:
        return spec, problems
    # The step (T) and episode (E) counts are what most arrays agree on; the odd ones out are blamed.
    counts: dict[str, dict[int, list[str]]] = {"T": {}, "E": {}}
    for name, arr in metas.items():
        expected = shapes[name]
        if str(arr.dtype) != dtypes[name]:
            problems.append(f"{name}: expected dtype {dtypes[name]}, got {arr.dtype}")
        if arr.ndim != len(expected):
            problems.append(f"{name}: expected rank {len(expected)} with shape {_fmt(expected)}, "
                            f"got rank {arr.ndim} with shape {tuple(arr.shape)}")
            continue
        for axis, (want, got) in enumerate(zip(expected, arr.shape)):
            if isinstance(want, str):
                counts[want].setdefault(got, []).append(name)
            elif want != got:
                problems.append(f"{name}: expected shape {_fmt(expected)}, got {tuple(arr.shape)} "
                                f"(axis {axis} should be {want} per the dataset attributes)")
    sizes = {}
    for axis, attr, what in (("T", "n_transitions", "steps"), ("E", "n_episodes", "episodes")):
        by_size = counts[axis]
        if not by_size:
            continue
        # majority; ties broken by the count the attributes record
        size = max(by_size, key=lambda n: (len(by_size[n]), n == attrs.get(attr)))
        sizes[axis] = size
        for other, names in sorted(by_size.items()):
            if other != size:
                for name in names:
                    problems.append(f"{name}: axis 0 has {other} entries, expected {size} {what} like "
                                    f"{', '.join(by_size[size][:3])}")
    if problems:
        return spec, problems
    n_steps, n_eps = sizes["T"], sizes["E"]
    if n_steps == 0 or n_eps == 0:
        at_fault = "observations" if n_steps == 0 else "episode_starts"
        problems.append(f"{at_fault}: empty dataset ({n_steps} steps in {n_eps} episodes)")
    for key, value in (("n_transitions", n_steps), ("n_episodes", n_eps)):
        if key in attrs and attrs[key] != value:
            problems.append(f"attribute '{key}': says {attrs[key]}, arrays hold {value}")
    return spec, problems


def content_problems(spec: DatasetSpec, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Check values: finiteness, episode boundaries, action ranges and legality, padding."""
    problems: list[str] = []
    n_steps = len(arrays["rewards"])
    for name, arr in arrays.items():
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                problems.append(f"{name}: {int(bad.sum())} NaN/inf values, first at index "
                                f"{tuple(int(i) for i in np.argwhere(bad)[0])} (expected finite numbers)")

    starts = arrays["episode_starts"]
    if len(starts) and starts[0] != 0:
        problems.append(f"episode_starts: first episode must start at step 0, got {int(starts[0])}")
    if (np.diff(starts) <= 0).any():
        i = int(np.argmax(np.diff(starts) <= 0))
        problems.append(f"episode_starts: expected strictly increasing starts, got {int(starts[i])} then "
                        f"{int(starts[i + 1])} at episodes {i}, {i + 1}")
    if len(starts) and (starts.min() < 0 or starts.max() >= n_steps):
        problems.append(f"episode_starts: values must lie in [0, {n_steps}) (the number of steps), "
                        f"got range [{int(starts.min())}, {int(starts.max())}]")
    if problems:
        return problems

    episode_ends = np.append(starts[1:] - 1, n_steps - 1)  # [E] last step of each episode
    last = np.zeros(n_steps, bool)
    last[episode_ends] = True
    ends = arrays["terminals"] | arrays["truncations"]
    inner = np.flatnonzero(ends & ~last)
    if len(inner):
        problems.append(f"terminals/truncations: set inside an episode at steps {_few(inner)} "
                        f"(expected only at each episode's last step; is episode_starts complete?)")
    open_end = np.flatnonzero(last & ~ends)
    if len(open_end):
        problems.append(f"terminals/truncations: episode ending at steps {_few(open_end)} is neither "
                        f"terminated nor truncated (expected one of them at each episode's last step)")
    both = np.flatnonzero(arrays["terminals"] & arrays["truncations"])
    if len(both):
        problems.append(f"terminals/truncations: both set at steps {_few(both)} (expected at most one)")

    actions = arrays["actions"]
    if spec.discrete:
        out = np.argwhere((actions < 0) | (actions >= spec.n_actions))
        if len(out):
            t, i = out[0]
            problems.append(f"actions: {len(out)} out of range [0, {spec.n_actions}), e.g. agent {i} at "
                            f"step {t} took {int(actions[t, i])}")
        none_legal = np.argwhere(~arrays["avail_actions"].any(-1))
        if len(none_legal):
            t, i = none_legal[0]
            problems.append(f"avail_actions: {len(none_legal)} (step, agent) pairs with no legal action "
                            f"although an action was taken, e.g. agent {i} at step {t}")
        # after a truncation the next legal actions feed the bootstrap's argmax; after a termination
        # nothing follows, so environments may mark every action illegal there
        truncated = arrays["truncations"][episode_ends]  # [E]
        none_legal = np.argwhere(~arrays["final_avail_actions"].any(-1) & truncated[:, None])
        if len(none_legal):
            e, i = none_legal[0]
            problems.append(f"final_avail_actions: {len(none_legal)} (episode, agent) pairs with no legal "
                            f"action after a truncated episode, e.g. agent {i} after episode {e}")
        if not len(out):
            taken = np.take_along_axis(arrays["avail_actions"], actions[..., None], -1)[..., 0]
            illegal = np.argwhere(~taken)
            if len(illegal):
                t, i = illegal[0]
                problems.append(f"actions: {len(illegal)} actions marked illegal by avail_actions, e.g. agent "
                                f"{i} at step {t} took {int(actions[t, i])}")
    else:
        low = np.asarray(spec.action_low, np.float32)
        high = np.asarray(spec.action_high, np.float32)
        tol = 1e-5 * np.maximum(1.0, high - low)
        out = np.argwhere((actions < low - tol) | (actions > high + tol))
        if len(out):
            t, i, d = out[0]
            problems.append(f"actions: {len(out)} values outside the bounds [action_low, action_high], e.g. "
                            f"agent {i} at step {t}, dimension {d}: {float(actions[t, i, d])} not in "
                            f"[{low[d]}, {high[d]}]")

    mask = arrays["obs_mask"]
    for name in ("observations", "final_observations"):
        if np.any(arrays[name][:, ~mask] != 0):  # [T or E, number of padded features]
            problems.append(f"{name}: non-zero values where obs_mask is False (padded features must be 0)")
    return problems


def open_dataset(path: str | Path) -> tuple[zarr.Group, DatasetSpec]:
    """Open a dataset group and check its structure (metadata only); raises DatasetError naming each problem."""
    group, problems = open_group(path)
    if group is None:
        raise DatasetError(str(path), problems, read_hint(path))
    spec, problems = structure_problems(group)
    if problems:
        raise DatasetError(str(path), problems, read_hint(path))
    return group, spec


def validate_dataset(path: str | Path) -> list[str]:
    """All problems with the dataset at ``path``; an empty list means it is valid."""
    group, problems = open_group(path)
    if group is None:
        return problems
    spec, problems = structure_problems(group)
    if problems:
        return problems
    arrays, problems = read_arrays(group)
    return problems or content_problems(spec, arrays)


def read_arrays(group: zarr.Group) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every array of the group in memory; an unreadable one (corrupt chunk) is a problem, not a crash."""
    arrays, problems = {}, []
    for name in sorted(group.array_keys()):
        try:
            arrays[name] = group[name][...]
        except Exception as exc:
            problems.append(f"{name}: unreadable array data ({type(exc).__name__}: {exc})")
    return arrays, problems


def _unreadable_members(group: zarr.Group) -> list[str]:
    root = Path(str(group.store.root))  # datasets are local folders
    problems = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            zarr.open_array(str(child), mode="r")
        except Exception as exc:
            problems.append(f"{child.name}: unreadable array metadata ({type(exc).__name__}: {exc})")
    return problems or [f"{root}: unreadable group members"]


def _fmt(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _few(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:MAX_REPORTED])
    return shown + (f" and {len(idx) - MAX_REPORTED} more" if len(idx) > MAX_REPORTED else "")
