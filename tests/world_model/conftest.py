"""Fixtures for world-model tests: small models built on the synthetic datasets, and a trained LOGO checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything

from logo.data import OfflineMARLDataModule
from logo.dims import linked_dims
from logo.trainer import LogoTrainer
from logo.world_model import DirectWorldModel, EnsembleWorldModel, LogoWorldModel

SMALL = {
    LogoWorldModel: {"hidden_sizes": [64, 64], "latent_dim": 32},
    DirectWorldModel: {"width": 96},
    EnsembleWorldModel: {"ensemble_size": 3, "elites": 2, "hidden_sizes": [64, 64]},
}


def datamodule(path: Path, **kwargs) -> OfflineMARLDataModule:
    dm = OfflineMARLDataModule(str(path), **{"batch_size": 64, "steps_per_epoch": 50, "val_fraction": 0.2,
                                              **kwargs})
    dm.setup("fit")
    return dm


def build(cls, dm: OfflineMARLDataModule, **kwargs):
    """A small model of ``cls`` with the data module's dims and statistics."""
    model = cls(**linked_dims(dm), **{**SMALL[cls], **kwargs})
    model.set_statistics(dm.statistics, torch.from_numpy(dm.dataset.arrays["obs_mask"]))
    return model


def fit(model, dm: OfflineMARLDataModule, root: Path, max_steps: int) -> LogoTrainer:
    """Train ``max_steps`` updates as one epoch, then validate once (logo's Trainer: with the world-model
    diagnostics, as in ``logo fit``)."""
    dm.steps_per_epoch = max_steps
    trainer = LogoTrainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
                          num_sanity_val_steps=0)
    trainer.fit(model, dm)
    return trainer


@pytest.fixture(params=["discrete", "continuous"])
def dataset(request, discrete_dataset, continuous_dataset) -> Path:
    return discrete_dataset if request.param == "discrete" else continuous_dataset


@pytest.fixture(scope="session")
def trained_logo(discrete_dataset, tmp_path_factory) -> Path:
    """A LOGO checkpoint trained 400 steps on the synthetic discrete dataset (read-only)."""
    seed_everything(0, verbose=False)
    root = tmp_path_factory.mktemp("logo")
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=128, steps_per_epoch=400, val_fraction=0.2)
    model = LogoWorldModel(**linked_dims(dm), **SMALL[LogoWorldModel], lr=3e-3)
    trainer = fit(model, dm, root, max_steps=400)
    path = root / "logo.ckpt"
    trainer.save_checkpoint(path)
    return path
