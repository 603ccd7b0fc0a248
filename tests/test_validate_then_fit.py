"""`Trainer.validate` then `Trainer.fit` on the same module instance (as in a notebook) must work."""

from __future__ import annotations

import pytest
from lightning.pytorch import Trainer

from logo.data import OfflineMARLDataModule
from logo.dims import linked_dims
from logo.policy import BCPolicy, DiscreteMACQL
from logo.world_model import LogoWorldModel

SMALL = {BCPolicy: {"hidden_sizes": [32]}, DiscreteMACQL: {"hidden_sizes": [32]},
         LogoWorldModel: {"hidden_sizes": [32, 32], "latent_dim": 16}}


@pytest.mark.parametrize("cls", list(SMALL), ids=lambda c: c.__name__)
def test_validate_then_fit_on_one_instance(cls, discrete_dataset):
    dm = OfflineMARLDataModule(str(discrete_dataset), batch_size=32, steps_per_epoch=3, val_fraction=0.2)
    model = cls(**linked_dims(dm), **SMALL[cls])
    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False, "accelerator": "cpu"}
    Trainer(**options).validate(model, dm)
    trainer = Trainer(max_steps=3, **options)
    trainer.fit(model, dm)  # metric states from validate were inference tensors: reset at fit start
    assert trainer.global_step == 3 and "val/loss" in trainer.callback_metrics
