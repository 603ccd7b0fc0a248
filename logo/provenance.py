"""Where a result came from and how it is written: git revision, code version, machine, atomic JSON files.

Used by the benchmark scripts (every result file), ``logo pipeline`` (``results.json``) and the loggers
(the run's record).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import logo

PACKAGE = Path(logo.__file__).resolve().parent  # the logo package folder
ROOT = PACKAGE.parent  # the checkout, where logo is one


def git(*args: str, cwd: str | Path = ROOT, check: bool = True, timeout: float | None = None) -> str | None:
    """Stripped stdout of ``git ARGS`` run in ``cwd``; None where git is missing, or (``check``) exits non-zero,
    or runs past ``timeout`` seconds."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check,
                              timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_revision() -> str:
    """Short commit of the checkout, ``-dirty`` when tracked files differ from it (``unknown`` without git)."""
    revision = git("rev-parse", "--short", "HEAD", check=False) or "unknown"
    return revision + ("-dirty" if git("status", "--porcelain", "--untracked-files=no", check=False) else "")


def code_version() -> dict[str, Any]:
    """logo's version and, in a git checkout of logo, its commit and whether tracked files differ from it
    (None where git or the checkout is missing)."""
    out: dict[str, Any] = {"logo": logo.__version__, "git_commit": None, "git_dirty": None}
    top = git("rev-parse", "--show-toplevel", cwd=PACKAGE, timeout=10)
    if top is None or Path(top).resolve() != ROOT:  # logo is not this repo
        return out
    commit = git("rev-parse", "HEAD", cwd=PACKAGE, timeout=10)
    if commit is None:
        return out
    out["git_commit"] = commit
    status = git("status", "--porcelain", "--untracked-files=no", cwd=PACKAGE, timeout=10)
    if status is not None:
        out["git_dirty"] = bool(status)
    return out


def machine(device: Any = None) -> dict[str, Any]:
    """CPU model, cores, torch threads and version, the GPU of ``device`` (default: the first GPU if any)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "platform": platform.platform()}


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file next to it, then ``os.replace``), so a result file
    either exists whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
