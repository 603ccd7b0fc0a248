"""Checkpoints that name the class that wrote them, so they load without the user naming it.

A module class declares its kind as a class attribute, ``checkpoint_kind = "policy"`` (every
acting policy) or ``"world-model"`` (every world model); :func:`record_class` stores the writing
class under that kind's key (``logo_policy_class``, ``logo_world_model_class``) and
:func:`load_recorded` reads the entry, imports the class and calls its ``load_from_checkpoint``,
with one clear error for a missing, unreadable or wrong-kind file. This module imports no model
class: the CLI's ``--ckpt_path`` checks live in :mod:`logo.cli`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from logo.errors import LogoError


def class_key(kind: str) -> str:
    """The checkpoint entry that records the writing class of a ``kind`` module: ``logo_policy_class``,
    ``logo_world_model_class``."""
    return f"logo_{kind.replace('-', '_')}_class"


KINDS = {class_key(kind): kind for kind in ("policy", "world-model")}  # recorded key -> kind


def record_class(module: LightningModule, checkpoint: dict[str, Any]) -> None:
    """Store ``module``'s importable class name under its kind's key (call from ``on_save_checkpoint``)."""
    checkpoint[class_key(module.checkpoint_kind)] = f"{type(module).__module__}:{type(module).__qualname__}"


def load_recorded(path: str | Path, kind: str, map_location: str | torch.device = "cpu") -> LightningModule:
    """Load the ``kind`` module saved in checkpoint ``path`` by the class recorded in it."""
    path, key = Path(path), class_key(kind)
    checkpoint = read_checkpoint(path, f"{kind} checkpoint {path}",
                                 f"train a {kind.replace('-', ' ')} with `logo fit` first")
    target = checkpoint.get(key) if isinstance(checkpoint, dict) else None
    if not target:
        other = next((KINDS[k] for k in KINDS if k != key and isinstance(checkpoint, dict) and k in checkpoint), None)
        what = f"it is a {other} checkpoint" if other else "it was not written by logo"
        raise LogoError(f"{kind} checkpoint {path}: {what} (no '{key}' entry); pass a checkpoint written by "
                        f"`logo fit` of a {kind.replace('-', ' ')}")
    module_name, _, qualname = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise LogoError(f"{kind} checkpoint {path}: class {target} is not importable ({exc})") from exc
    return cls.load_from_checkpoint(path, map_location=map_location)


def read_checkpoint(path: Path, what: str, fix: str) -> Any:
    """The object saved at ``path``; a LogoError starting with ``what`` for a missing or unreadable file."""
    if not path.is_file():
        raise LogoError(f"{what}: no such file; check the path, or {fix}")
    try:  # memory-mapped: the callers need a few entries, not every tensor (e.g. a saved synthetic buffer)
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        pass  # not a zip-format checkpoint, or not a checkpoint at all: a plain read gives the real error
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogoError(f"{what}: cannot be read as a PyTorch checkpoint ({reason}); pass a .ckpt file written by "
                        "`logo fit`") from exc
