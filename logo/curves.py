"""``logo curves``: read the learning curves of runs, print them as a table and plot them.

    logo curves runs/smax/3m/policy                        # every curve.json under a run folder
    logo curves MACQL='runs/macql_s*' LOGO='runs/logo_s*' --out curves.png
    logo curves benchmarks/results/matrix/smax_3m/medium --metric win_rate --metric train/q_data_real,train/rtg_real

A curve is the ``curve.json`` that :class:`~logo.callbacks.EnvEvaluation` writes in a run's log folder
(see :class:`~logo.callbacks.learning_curve.LearningCurve`), or the ``curve`` of a ``benchmarks/matrix.py``
or ``benchmarks/backbone.py`` result (labelled by variant and scenario; its keys mapped to the callback's names).
Curves with the same label (the file's, or ``LABEL=`` in front of a path) are one group, drawn
as the mean over its runs (seeds) with a band of one standard deviation. Plotting needs matplotlib
(``pip install 'logo[plot]'``); the table does not.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logo.errors import LogoError

WHAT = ("a curve.json written by the EnvEvaluation callback during `logo fit`, a benchmarks/matrix.py or "
        "benchmarks/backbone.py result with a 'curve', or a folder holding any of them")
# a benchmarks/backbone.py result's point keys -> the names the callback's curve.json uses for the same quantities
BACKBONE_KEYS = {"normalized_score": "normalized_score", "return": "return_mean", "win_rate": "win_rate",
                 "q_data": "train/q_data_real", "rtg_real": "train/rtg_real", "td_bias": "train/td_bias",
                 "val_td": "val/loss", "q_policy": "q_policy", "rtg_policy": "rtg_policy"}
STYLES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}  # line style per metric of a panel


@dataclass
class Curve:
    """One run's curve: its group label, seed, points (dicts with ``updates`` and metric values) and source."""

    label: str
    seed: int | None
    points: list[dict[str, Any]]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> set[str]:
        return {k for p in self.points for k, v in p.items() if isinstance(v, (int, float)) and k != "updates"}


def curve_from_dict(data: Any, source: str, label: str | None = None) -> Curve | None:
    """The curve in a parsed JSON file (a curve file, or a matrix result with a ``curve``); None if it has none."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("curve"), dict):  # a benchmarks/matrix.py result: the method names the group
        name = data.get("method") or data["curve"].get("label")
        ablation = data.get("ablation")
        if name and ablation:
            name = f"{name} {ablation['name']}={ablation['value']}"
        return curve_from_dict({**data["curve"], "label": name, "seed": data.get("seed", data["curve"].get("seed"))},
                               source, label)
    if isinstance(data.get("curve"), list) and "variant" in data:  # a benchmarks/backbone.py result: one per run
        points = [{"updates": p["updates"], **{BACKBONE_KEYS[k]: v for k, v in p.items() if k in BACKBONE_KEYS}}
                  for p in data["curve"] if isinstance(p, dict) and "updates" in p]
        name = f"{data['variant']} {data['scenario']}" if "scenario" in data else data["variant"]
        return Curve(label or name, data.get("seed"), points, source,
                     {k: v for k, v in data.items() if k != "curve"})
    points = data.get("points")
    if not isinstance(points, list) or not all(isinstance(p, dict) and "updates" in p for p in points):
        return None
    meta = {k: v for k, v in data.items() if k != "points"}
    points = [_with_real_split(p) for p in points]
    return Curve(label or str(data.get("label") or Path(source).parent.name), data.get("seed"), points, source, meta)


def _with_real_split(point: dict[str, Any]) -> dict[str, Any]:
    """A point of a run on real data only also as its real-row split: the policies log ``train/X_real`` only when
    synthetic rows are mixed in (``train/synthetic_share``), and without them ``train/X`` is the real rows' mean."""
    if any(k.startswith("train/synthetic") or k.endswith("_synthetic") for k in point):
        return point
    return {**point, **{f"{k}_real": v for k in ("train/q_data", "train/td", "train/cql") if (v := point.get(k))
                        is not None and f"{k}_real" not in point}}


def read_curves(spec: str) -> list[Curve]:
    """The curves of one command-line argument: ``[LABEL=]PATH``, where PATH is a file, a folder (every curve file
    under it) or a shell-style pattern. Raises a LogoError naming the path when it holds no curve."""
    label, path = None, spec
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
    paths = [Path(p) for p in sorted(glob.glob(path))] if not Path(path).exists() else [Path(path)]
    if not paths:
        raise LogoError(f"{path}: no such file or folder (expected {WHAT})")
    curves = []
    for target in paths:
        files = sorted(target.rglob("*.json")) if target.is_dir() else [target]
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                if target.is_dir():
                    continue  # other JSON files of a run folder
                raise LogoError(f"{file}: not a readable JSON file ({exc}); expected {WHAT}") from exc
            curve = curve_from_dict(data, str(file), label)
            if curve is not None:
                curves.append(curve)
            elif not target.is_dir():
                raise LogoError(f"{file}: holds no learning curve; expected {WHAT}")
    if not curves:
        raise LogoError(f"{path}: no learning curve found; expected {WHAT}. A fit writes one when its trainer has "
                        "an EnvEvaluation callback (see docs/results.md, 'Learning curves')")
    return curves


def group_curves(curves: Sequence[Curve]) -> dict[str, list[Curve]]:
    """Curves by label, in the order the labels first appear."""
    groups: dict[str, list[Curve]] = {}
    for curve in curves:
        groups.setdefault(curve.label, []).append(curve)
    return groups


def mean_std(curves: Sequence[Curve], metric: str) -> list[tuple[int, float, float, int]]:
    """``(updates, mean, std, n)`` of ``metric`` at every update count where at least one curve has it; the std is
    the population std over the ``n`` curves that have a point there (0 for one)."""
    at: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve.points:
            value = point.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                at.setdefault(int(point["updates"]), []).append(float(value))
    out = []
    for updates in sorted(at):
        values = at[updates]
        m = sum(values) / len(values)
        out.append((updates, m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values)), len(values)))
    return out


def default_panels(curves: Sequence[Curve]) -> list[list[str]]:
    """Score (normalised where known, else return), win rate, Q of the data's actions on real rows against the
    data's return-to-go there, and the TD error on real against synthetic rows: each where some curve has it."""
    have = set().union(*(c.metrics() for c in curves))
    panels = [["normalized_score" if "normalized_score" in have else "return_mean"]]
    if "win_rate" in have:
        panels.append(["win_rate"])
    if "train/q_data_real" in have:
        panels.append(["train/q_data_real"] + (["train/rtg_real"] if "train/rtg_real" in have else []))
    if "train/td_synthetic" in have:
        panels.append(["train/td_real", "train/td_synthetic"])
    return panels


def check_metrics(curves: Sequence[Curve], panels: Sequence[Sequence[str]]) -> None:
    have = set().union(*(c.metrics() for c in curves))
    missing = [m for panel in panels for m in panel if m not in have]
    if missing:
        raise LogoError(f"--metric: no curve has {', '.join(missing)}; the curves have: {', '.join(sorted(have))}")


def curve_table(groups: dict[str, list[Curve]], metric: str, digits: int = 2) -> str:
    """A markdown table of ``metric``: one row per group that has it, one column per update count, mean ± std over
    the group's runs."""
    rows = {label: {u: (m, s, n) for u, m, s, n in mean_std(curves, metric)} for label, curves in groups.items()}
    rows = {label: row for label, row in rows.items() if row}
    columns = sorted({u for row in rows.values() for u in row})
    lines = ["| " + " | ".join([f"{metric} \\ updates", "runs", *(f"{u:,}" for u in columns)]) + " |",
             "|" + "---|" * (len(columns) + 2)]
    for label, row in rows.items():
        cells = []
        for u in columns:
            if u not in row:
                cells.append("–")
                continue
            m, s, n = row[u]
            cells.append(f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}")
        lines.append("| " + " | ".join([label, str(len(groups[label])), *cells]) + " |")
    return "\n".join(lines)


def plot_curves(groups: dict[str, list[Curve]], out: str | Path, panels: Sequence[Sequence[str]] | None = None,
                title: str | None = None) -> Path:
    """Draw one panel per entry of ``panels`` (metrics overlaid, one line style each), one colour per group: the
    mean over its runs with a band of ± one std. Writes ``out`` (format from its suffix, e.g. PNG)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend, nothing drawn on screen
    except ImportError as exc:
        raise LogoError("plotting curves needs matplotlib: pip install 'logo[plot]'") from exc
    curves = [c for group in groups.values() for c in group]
    panels = [list(p) for p in (panels or default_panels(curves))]
    check_metrics(curves, panels)
    rows = -(-len(groups) // 4)  # legend rows below the panels
    figure = Figure(figsize=(4.2 * len(panels), 3.2 + 0.25 * rows), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for ax, panel in zip(axes, panels):
        for colour, (label, group) in zip(colours, groups.items()):
            for style, metric in zip(STYLES, panel):
                stats = mean_std(group, metric)
                if not stats:
                    continue
                x = [u for u, *_ in stats]
                m = [v for _, v, _, _ in stats]
                s = [v for _, _, v, _ in stats]
                name = f"{label} (n={len(group)})" if metric == panel[0] else None
                ax.plot(x, m, style, color=colour, marker="o", markersize=3, label=name)
                if any(n > 1 for *_, n in stats):
                    ax.fill_between(x, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)],
                                    color=colour, alpha=0.15, linewidth=0)
        ax.set_xlabel("updates")
        ax.set_ylabel(" / ".join(f"{metric} ({STYLES[style]})" if len(panel) > 1 else metric
                                 for style, metric in zip(STYLES, panel)), fontsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    """``logo curves``: print a table of the curves' first metric and, with ``--out``, plot them."""
    parser = argparse.ArgumentParser(prog="logo curves", description="Tabulate and plot the learning curves of runs "
                                     "(curve.json of EnvEvaluation, or benchmark matrix results).",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:5]))
    parser.add_argument("paths", nargs="+", metavar="[LABEL=]PATH",
                        help="curve.json files, run folders, matrix results or folders of them (shell-style "
                             "patterns allowed); runs with the same label are averaged")
    parser.add_argument("--out", help="figure to write (PNG, SVG or PDF by its suffix); without it, only the table")
    parser.add_argument("--metric", action="append", metavar="M[,M2...]",
                        help="a panel: one metric, or several overlaid (comma-separated), e.g. normalized_score, "
                             "win_rate, train/q_data_real,train/rtg_real; repeat for more panels (default: score, "
                             "win rate, q_data_real against rtg_real, td_real against td_synthetic, where present)")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)
    curves = [c for spec in args.paths for c in read_curves(spec)]
    panels = [m.split(",") for m in args.metric] if args.metric else default_panels(curves)
    check_metrics(curves, panels)
    groups = group_curves(curves)
    for panel in panels:
        for metric in panel:
            print(curve_table(groups, metric), end="\n\n")
    if args.out:
        print(f"figure: {plot_curves(groups, args.out, panels, args.title)}")
    return 0
