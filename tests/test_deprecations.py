"""Old YAML keys keep working for one release, with a deprecation message naming the new key."""

from __future__ import annotations

import pytest
import yaml

from logo.cli import LogoCLI
from logo.data import OfflineMARLDataModule
from logo.synthetic import ModelRollouts, SamplingOptions
from tests.conftest import ROOT

POLICY = str(ROOT / "configs/smax/3m/policy.yaml")

# The rollout part of a policy config as it was written before data.synthetic existed.
OLD_KEYS = {"world_model": "old/best.ckpt", "sampling": "penalty", "horizon": 7, "rollout_every": 11,
            "rollout_batch": 13, "buffer_rollouts": 3, "priority_center": 0.5, "priority_low": -2.0,
            "priority_high": 0.75, "temperature": 2.0, "relative_uncertainty": False, "penalty": 0.25,
            "checkpoint_buffer": False}


def _data_module(tmp_path, dataset, data_keys: dict) -> OfflineMARLDataModule:
    """The data module LightningCLI builds from the shipped SMAX 3m policy config plus an old-style user config."""
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"data": {"init_args": {"path": str(dataset), "synthetic": None, **data_keys}}}))
    cli = LogoCLI(args=["--config", POLICY, "--config", str(user), "--trainer.logger", "false",
                        "--trainer.callbacks", "[]"], run=False)
    return cli.datamodule


def test_old_flat_rollout_keys_build_the_same_source_and_name_the_new_keys(tmp_path, discrete_dataset):
    with pytest.warns(FutureWarning) as caught:
        dm = _data_module(tmp_path, discrete_dataset, OLD_KEYS)
    message = " ".join(str(w.message) for w in caught)
    for old, new in (("horizon", "synthetic.init_args.horizon"),
                     ("world_model", "synthetic.init_args.world_model"),
                     ("priority_low", "synthetic.init_args.sampling.priority_low"),
                     ("checkpoint_buffer", "synthetic.init_args.checkpoint_buffer")):
        assert f"data.{old} -> data.{new}" in message
    source = dm.synthetic
    assert isinstance(source, ModelRollouts)
    assert (source.path, source.horizon, source.rollout_every, source.rollout_batch, source.buffer_rollouts,
            source.checkpoint_buffer) == ("old/best.ckpt", 7, 11, 13, 3, False)
    assert source.sampling == SamplingOptions(mode="penalty", priority_center=0.5, priority_low=-2.0,
                                              priority_high=0.75, temperature=2.0, relative_uncertainty=False,
                                              penalty=0.25)


def test_old_keys_override_a_configured_source_and_sampling_none_means_real_data_only(tmp_path, discrete_dataset):
    source = ModelRollouts("new/best.ckpt", horizon=15, sampling=SamplingOptions("uniform"))
    with pytest.warns(FutureWarning, match=r"data.horizon -> data.synthetic.init_args.horizon"):
        dm = OfflineMARLDataModule(str(discrete_dataset), synthetic=source, horizon=5, temperature=3.0)
    assert (dm.synthetic.path, dm.synthetic.horizon) == ("new/best.ckpt", 5)
    assert dm.synthetic.sampling == SamplingOptions("uniform", temperature=3.0)
    with pytest.warns(FutureWarning, match="data.sampling"):
        dm = _data_module(tmp_path, discrete_dataset, {"world_model": "old/best.ckpt", "sampling": "none"})
    assert dm.synthetic is None
    with pytest.warns(FutureWarning, match="data.horizon"):  # no world model: real data only, as before
        assert _data_module(tmp_path, discrete_dataset, {"horizon": 3}).synthetic is None


def test_new_keys_give_no_warning(tmp_path, discrete_dataset, recwarn):
    dm = _data_module(tmp_path, discrete_dataset, {})
    assert dm.synthetic is None
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
