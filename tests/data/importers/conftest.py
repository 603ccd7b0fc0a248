"""Shared checks of the importer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from logo.cli import main
from tests.conftest import ROOT


@pytest.fixture
def cli_round_trip(tmp_path, capfd) -> Callable[..., str]:
    """``logo data import FMT SRC --out ... [options]``, then ``logo data validate`` and a ``logo fit`` of BC on the
    result; returns what the import printed."""

    def run(fmt: str, src: Path, *options: str) -> str:
        out = tmp_path / "cli.zarr"
        assert main(["data", "import", fmt, str(src), "--out", str(out), "--no_progress", *options]) == 0
        printed = capfd.readouterr().out
        assert "validated" in printed
        assert main(["data", "validate", str(out)]) == 0
        assert main(["fit", "--config", str(ROOT / "configs/synthetic/bc.yaml"), "--data.init_args.path", str(out),
                     "--data.init_args.val_fraction", "0.25", "--trainer.fast_dev_run", "true",
                     "--trainer.default_root_dir", str(tmp_path / "runs")]) == 0
        return printed

    return run
