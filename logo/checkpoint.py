"""Checkpoints that name the class that wrote them, so they load without the user naming it.

Policies record ``logo_policy_class`` and world models ``logo_world_model_class``;
:func:`load_recorded` reads the entry, imports the class and calls its
``load_from_checkpoint``, with one clear error for a missing, unreadable or wrong-kind file.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from logo.errors import LogoError

KINDS = {"logo_policy_class": "policy", "logo_world_model_class": "world-model"}


def record_class(module: LightningModule, checkpoint: dict[str, Any], key: str) -> None:
    """Store ``module``'s importable class name under ``key`` (call from ``on_save_checkpoint``)."""
    checkpoint[key] = f"{type(module).__module__}:{type(module).__qualname__}"


def load_recorded(path: str | Path, key: str, map_location: str | torch.device = "cpu") -> LightningModule:
    """Load the module saved in checkpoint ``path`` by the class recorded under ``key``."""
    path, kind = Path(path), KINDS[key]
    if not path.is_file():
        raise LogoError(f"{kind} checkpoint {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise LogoError(f"{kind} checkpoint {path}: cannot be read as a PyTorch checkpoint ({exc})") from exc
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
