"""The ``logo`` command: Lightning's fit/validate/test/predict plus a thin dispatch to tool commands.

Like Lightning's own ``cli.py``, it also checks ``--ckpt_path`` before Lightning reads it
(:func:`check_ckpt_path`, :func:`check_ckpt_fits`): the same clear errors as
:func:`logo.checkpoint.load_recorded`, and the dims where a checkpoint and the dataset differ.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from logo import __version__
from logo.callbacks import EnvEvaluation, RolloutRounds  # noqa: F401
from logo.checkpoint import KINDS, read_checkpoint
from logo.data import OfflineMARLDataModule  # noqa: F401  (short class names in YAML)
from logo.dims import LINKED_DIMS
from logo.errors import LogoError, check_fits
from logo.loggers import LogoCSVLogger, LogoWandbLogger, SaveConfigToLoggers  # noqa: F401
from logo.online import OnlineEnvDataModule, OnlineMAPPO, OnlineTD3, ReplayExport, ReturnSnapshots, RolloutDataModule  # noqa: F401
from logo.policy import BCPolicy, ContinuousMACQL, DiscreteMACQL  # noqa: F401
from logo.synthetic import ModelRollouts  # noqa: F401
from logo.trainer import LogoTrainer
from logo.world_model import DirectWorldModel, EnsembleWorldModel, LogoWorldModel  # noqa: F401

# Non-training commands: name -> (module with main(args) -> int, help line)
TOOL_COMMANDS = {
    "data": ("logo.data.cli", "dataset tools: info, validate, merge, synth"),
    "collect": ("logo.collect", "record a behaviour policy in a real environment as a dataset"),
    "rollout": ("logo.synthetic.export", "roll a trained world model out and write the rollouts as a dataset"),
    "tiers": ("logo.tiers", "train a behaviour policy online and write its expert / medium / medium-replay / mixed "
                            "datasets"),
    "pipeline": ("logo.pipeline", "collect, fit the world model, fit BC / MACQL / LOGO+MACQL, evaluate, tabulate"),
    "curves": ("logo.curves", "tabulate and plot the learning curves of runs (mean ± std over seeds)"),
}
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")  # ckpt_path values Lightning resolves itself


class LogoCLI(LightningCLI):
    """LightningCLI for any logo model and data module, with the data module's dims linked into the model.

    Example:
        >>> cli = LogoCLI(args=["--config", "configs/synthetic/bc.yaml"], run=False)  # doctest: +SKIP
        >>> cli.trainer.fit(cli.model, cli.datamodule)  # doctest: +SKIP
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs) -> None:
        tools = "; ".join(f"'logo {name} --help': {line}" for name, (_, line) in TOOL_COMMANDS.items())
        kwargs.setdefault("save_config_callback", SaveConfigToLoggers)  # config, dataset and code to every logger
        # a one-line usage: a config error then prints that line, the tip and the error, not ~50 lines of options
        usage = {name: {"usage": "%(prog)s [-h] [-c CONFIG] [--print_config] [--KEY VALUE ...]"}
                 for name in self.subcommands()}
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"prog": "logo", "version": __version__,
                                            "description": "Offline multi-agent RL with the LOGO world model.",
                                            "epilog": f"Other commands: {tools}.", **usage})
        self._ckpt: tuple[str, dict] | None = None
        kwargs.setdefault("trainer_class", LogoTrainer)
        super().__init__(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                         args=args, run=run, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands plus ``evaluate`` (LogoTrainer.evaluate)."""
        return {**LightningCLI.subcommands(), "evaluate": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser) -> None:
        for name in LINKED_DIMS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        """Lightning's, then clear errors for a bad ``--ckpt_path`` before LightningCLI reads its hyperparameters."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is not None and config.get("ckpt_path"):
            hparams = check_ckpt_path(config.ckpt_path, getattr(config.get("model"), "class_path", None))
            self._ckpt = (config.ckpt_path, hparams) if hparams else None

    def after_instantiate_classes(self) -> None:
        if self._ckpt is not None:  # a checkpoint of another dataset: name the dims, not every tensor
            check_ckpt_fits(self._ckpt[1], self.model, self._ckpt[0], self.datamodule)


def check_ckpt_path(path: str, model_class_path: str | None) -> dict[str, Any] | None:
    """Clear errors for ``--ckpt_path`` before LightningCLI reads it: a missing or unreadable file, or a checkpoint
    of the other kind than the config's model (a world model for a policy config, or the reverse).

    The model's kind is its class's ``checkpoint_kind`` (see :mod:`logo.checkpoint`). Returns the checkpoint's
    hyperparameters (None for the names Lightning resolves itself, e.g. ``last``).
    """
    if str(path) in LIGHTNING_CKPT_NAMES or str(path).startswith("registry:") or "://" in str(path):
        return None
    path = Path(path)
    checkpoint = read_checkpoint(path, f"ckpt_path: {path}",
                                 "pick one under the run's checkpoints/ folder (e.g. last.ckpt)")
    if not isinstance(checkpoint, dict):
        raise LogoError(f"ckpt_path: {path} is not a Lightning checkpoint; pass a .ckpt file written by `logo fit`")
    recorded = next((key for key in KINDS if key in checkpoint), None)
    if recorded and model_class_path:
        module_name, _, name = model_class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        wanted = getattr(cls, "checkpoint_kind", None)
        if wanted and wanted != KINDS[recorded]:
            saved = checkpoint[recorded].rpartition(":")[2]
            where = (" (a world model goes in data.init_args.synthetic.init_args.world_model)"
                     if wanted == "policy" else "")
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


def main(args: list[str] | None = None) -> int:
    """Entry point of ``logo`` and ``python -m logo``; returns the exit code."""
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] in TOOL_COMMANDS:
            return importlib.import_module(TOOL_COMMANDS[argv[0]][0]).main(argv[1:])
        LogoCLI(args=None if args is None else argv)  # None: LightningCLI reads sys.argv itself
    except Exception as exc:
        user_error = _find_user_error(exc)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    return 0


def _find_user_error(exc: BaseException | None) -> LogoError | None:
    """The LogoError behind ``exc``, if any (jsonargparse wraps errors raised while instantiating)."""
    while exc is not None:
        if isinstance(exc, LogoError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
