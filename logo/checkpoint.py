"""Checkpoints that name the class that wrote them, so they load without the user naming it.

Policies record ``logo_policy_class`` and world models ``logo_world_model_class``;
:func:`load_recorded` reads the entry, imports the class and calls its
``load_from_checkpoint``, with one clear error for a missing, unreadable or wrong-kind file.
:func:`check_ckpt_path` and :func:`check_ckpt_fits` give the same errors for ``logo fit/evaluate --ckpt_path``,
and name the dims where the checkpoint and the dataset differ.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule

from logo.dims import LINKED_DIMS
from logo.errors import LogoError, check_fits

KINDS = {"logo_policy_class": "policy", "logo_world_model_class": "world-model"}
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")  # ckpt_path values Lightning resolves itself


def record_class(module: LightningModule, checkpoint: dict[str, Any], key: str) -> None:
    """Store ``module``'s importable class name under ``key`` (call from ``on_save_checkpoint``)."""
    checkpoint[key] = f"{type(module).__module__}:{type(module).__qualname__}"


def load_recorded(path: str | Path, key: str, map_location: str | torch.device = "cpu") -> LightningModule:
    """Load the module saved in checkpoint ``path`` by the class recorded under ``key``."""
    path, kind = Path(path), KINDS[key]
    checkpoint = _read(path, f"{kind} checkpoint {path}", f"train a {kind.replace('-', ' ')} with `logo fit` first")
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


def _read(path: Path, what: str, fix: str) -> Any:
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


def module_kind(cls: type) -> str | None:
    """``policy``, ``world-model`` or None (neither) for a LightningModule class."""
    from logo.policy.checkpoint import ActingPolicy
    from logo.world_model.base import WorldModel

    return "world-model" if issubclass(cls, WorldModel) else "policy" if issubclass(cls, ActingPolicy) else None


def check_ckpt_path(path: str, model_class_path: str | None) -> dict[str, Any] | None:
    """Clear errors for ``--ckpt_path`` before LightningCLI reads it: a missing or unreadable file, or a checkpoint
    of the other kind than the config's model (a world model for a policy config, or the reverse).

    Returns the checkpoint's hyperparameters (None for the names Lightning resolves itself, e.g. ``last``).
    """
    if str(path) in LIGHTNING_CKPT_NAMES or str(path).startswith("registry:") or "://" in str(path):
        return None
    path = Path(path)
    checkpoint = _read(path, f"ckpt_path: {path}", "pick one under the run's checkpoints/ folder (e.g. last.ckpt)")
    if not isinstance(checkpoint, dict):
        raise LogoError(f"ckpt_path: {path} is not a Lightning checkpoint; pass a .ckpt file written by `logo fit`")
    recorded = next((key for key in KINDS if key in checkpoint), None)
    if recorded and model_class_path:
        module_name, _, name = model_class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        wanted = module_kind(cls)
        if wanted and wanted != KINDS[recorded]:
            saved = checkpoint[recorded].rpartition(":")[2]
            where = " (a world model goes in data.init_args.world_model)" if wanted == "policy" else ""
            raise LogoError(f"ckpt_path: {path} is a {KINDS[recorded]} checkpoint ({saved}) but the config's model "
                            f"{cls.__name__} is a {wanted.replace('-', ' ')}; pass a checkpoint of "
                            f"{cls.__name__}{where}")
    return checkpoint.get("hyper_parameters") or {}


def check_ckpt_fits(hparams: Mapping[str, Any], model: LightningModule, path: str,
                    datamodule: LightningDataModule | None) -> None:
    """A LogoError naming each dim where checkpoint ``path`` (its ``hparams``) differs from ``model``, which was
    built for ``datamodule``: clearer than the wall of size mismatches of Lightning's ``load_state_dict``."""
    mine = getattr(model, "hparams", {})
    data_path = getattr(datamodule, "path", None)
    target, side = (f"dataset {data_path}", "dataset") if data_path else (type(datamodule).__name__, "data")
    check_fits(hparams, {k: mine[k] for k in LINKED_DIMS if k in mine}, f"ckpt_path {path}", target,
               ("checkpoint", side), hint=f"pass a checkpoint trained on this {side}, or the {side} it was trained on")
