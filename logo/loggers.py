"""What logo sends to experiment trackers: an offline-first W&B logger, the run's record (resolved
config, dataset attributes, code version) for every logger, and the histograms and calibration
plots that only the loggers that draw (TensorBoard, Weights & Biases) can show."""

from __future__ import annotations

import netrc
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from logo.provenance import code_version


def wandb_api_key_set() -> bool:
    """Whether W&B has a key to upload with: ``WANDB_API_KEY``, or a netrc entry for its host (``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(offline: bool | None = None) -> str:
    """The W&B mode a run starts in: ``offline`` where given, else ``WANDB_MODE`` where set, else online
    only where a key is set (:func:`wandb_api_key_set`)."""
    if offline is not None:
        return "offline" if offline else "online"
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_api_key_set() else "offline"


class LogoWandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger``, offline unless a key is set, with one W&B run per ``fit``/``validate``/``test``.

    Offline runs are written to ``<save_dir>/wandb/offline-run-*`` and uploaded later with ``wandb sync``;
    checkpoint artifacts (``log_model``) are recorded offline too and go up with the sync. Unlike
    Lightning's logger it finishes its run when the trainer finalizes the loggers, so several fits in
    one process (``logo pipeline``, tests) do not share a run.

    Args:
        name: display name of the run (default: ``WANDB_NAME``, else W&B's generated name).
        save_dir: folder that receives W&B's ``wandb/`` folder (default: ``WANDB_DIR``, else ``runs/wandb``).
        version: id of the run, to resume one (default: a new id).
        offline: force offline (true) or online (false); null: ``WANDB_MODE`` where set, else online only
            where a key is set (``WANDB_API_KEY`` or ``wandb login``).
        project: W&B project (default: ``WANDB_PROJECT``, else ``logo``).
        log_model: checkpoints of ModelCheckpoint as ``model`` artifacts: ``true`` at the end of a successful
            fit, ``all`` as they are written, ``false`` never.
        prefix: string put in front of every metric key.
        kwargs: further ``wandb.init`` arguments (``entity``, ``group``, ``tags``, ``notes``, ``mode``, ...).

    Example:
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> trainer = Trainer(logger=[CSVLogger("runs"), LogoWandbLogger()])  # doctest: +SKIP
    """

    def __init__(self, name: str | None = None, save_dir: str | None = None, version: str | None = None,
                 offline: bool | None = None, project: str | None = None,
                 log_model: Literal["all"] | bool = False, prefix: str = "", **kwargs: Any) -> None:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}  # LightningCLI passes every wandb.init key
        kwargs.setdefault("mode", wandb_mode(offline))  # not Lightning's `offline`, which refuses log_model
        super().__init__(name=name, save_dir=save_dir or os.environ.get("WANDB_DIR") or "runs/wandb",
                         version=version, project=project or os.environ.get("WANDB_PROJECT") or "logo",
                         log_model=log_model, prefix=prefix, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns about the setting even when it is None
            self._wandb_init.pop("anonymous", None)

    @property
    def mode(self) -> str:
        """The mode the run starts (or started) in: ``online``, ``offline``, ``disabled``, ..."""
        return self._wandb_init["mode"]

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)  # logs the checkpoints of log_model=True after a successful fit
        if self._experiment is not None:
            self._id = self._experiment.id  # `version` keeps naming the finished run
            self._experiment.finish(exit_code=0 if status in ("success", "finished") else 1)
            self._experiment = None


class LogoCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, except that it never deletes an earlier ``metrics.csv`` in its folder.

    Lightning's logger removes the file when a run writes into a folder that has one, which is what a
    resumed fit (``--ckpt_path last``) or a rerun of a config with a fixed ``version`` does. This one
    first renames it to ``metrics.1.csv`` (then ``.2``, ...), so the history before the resume stays
    next to the new ``metrics.csv``.

    Example:
        >>> trainer = Trainer(logger=LogoCSVLogger("runs/mpe", name="", version="logo"))  # doctest: +SKIP
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            keep_earlier_metrics(Path(self.log_dir))
        return super().experiment


def keep_earlier_metrics(log_dir: Path) -> Path | None:
    """Rename ``log_dir/metrics.csv`` to the first free ``metrics.<k>.csv``; returns the new path (None: no file)."""
    current = log_dir / "metrics.csv"
    if not current.is_file():
        return None
    k = 1
    while (log_dir / f"metrics.{k}.csv").exists():
        k += 1
    return current.rename(log_dir / f"metrics.{k}.csv")


# ---------------------------------------------------------------- the run's record
def dataset_attributes(datamodule: Any) -> dict[str, Any] | None:
    """The dataset's path and group attributes (spec, counts, returns, provenance), or None without a dataset."""
    path = getattr(datamodule, "path", None)
    if path is None:
        return None
    try:
        import zarr

        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # the spec read at construction is enough for the record
        spec = getattr(datamodule, "spec", None)
        attrs = asdict(spec) if spec is not None else {}
    return {"path": str(path), **attrs}


class SaveConfigToLoggers(SaveConfigCallback):
    """LightningCLI's config.yaml in the log dir, plus the run's record in every logger's hyper-parameters:
    ``config`` (the resolved config as a nested dict), ``dataset`` (:func:`dataset_attributes`) and ``code``
    (:func:`code_version`). With W&B these are top-level keys of the run's config."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not trainer.loggers:
            return
        record = {"config": yaml.safe_load(self.parser.dump(self.config, skip_none=False)),
                  "dataset": dataset_attributes(trainer.datamodule), "code": code_version()}
        for logger in trainer.loggers:
            logger.log_hyperparams(record)


def logs_this_step(module: LightningModule) -> bool:
    """Whether the loggers receive this training step's ``self.log`` values.

    Lightning writes step metrics every ``trainer.log_every_n_steps`` updates (and when a run stops); the
    policies and world models skip ``self.log`` on the other steps. Each call costs Lightning's result
    bookkeeping (about 0.35 ms on CPU; a policy makes up to 13 calls a step with synthetic data, a world
    model one per loss part), which was most of ``logo fit``'s overhead over a bare PyTorch loop
    (docs/results.md). Side effect: ``trainer.callback_metrics`` and the progress bar see ``train/*`` values
    only from logged steps. Outside a fit it is always true.
    """
    trainer = module._trainer
    if trainer is None or not trainer.training:
        return True
    every = trainer.log_every_n_steps
    # global_step + 1 is Lightning's own step count here (one optimizer): before this step's update
    return every > 0 and ((trainer.global_step + 1) % every == 0 or trainer.should_stop)


# ---------------------------------------------------------------- drawings
def _drawing_loggers(loggers: list[Logger]) -> list[tuple[str, Logger]]:
    kinds = ("TensorBoardLogger", "WandbLogger")
    return [(kind, logger) for logger in loggers for kind in kinds
            if any(cls.__name__ == kind for cls in type(logger).__mro__)]


def log_histogram(loggers: list[Logger], name: str, values: torch.Tensor, step: int) -> None:
    """Send a histogram of ``values`` to the loggers that draw histograms (TensorBoard, Weights & Biases)."""
    if len(values) == 0:
        return
    values = values.detach().float().cpu()
    for kind, logger in _drawing_loggers(loggers):
        if kind == "TensorBoardLogger":
            logger.experiment.add_histogram(name, values, step)
        else:
            import wandb

            logger.experiment.log({name: wandb.Histogram(values.numpy()), "trainer/global_step": step})


def log_calibration(loggers: list[Logger], name: str, u: torch.Tensor, error: torch.Tensor, step: int) -> None:
    """Draw binned mean error against binned mean u (see :func:`logo.metrics.calibration_bins`): a W&B line
    chart over a table with columns ``u``, ``error``; a TensorBoard figure where matplotlib is installed."""
    if len(u) == 0:
        return
    rows = [[float(a), float(b)] for a, b in zip(u.tolist(), error.tolist())]
    for kind, logger in _drawing_loggers(loggers):
        if kind == "TensorBoardLogger":
            try:
                from matplotlib.figure import Figure
            except ImportError:
                continue
            figure = Figure(figsize=(4, 3))
            axes = figure.subplots()
            axes.plot(*zip(*rows), marker="o")
            axes.set_xlabel("u (bin mean)")
            axes.set_ylabel("next-state error (bin mean)")
            logger.experiment.add_figure(name, figure, step)
        else:
            import wandb

            table = wandb.Table(columns=["u", "error"], data=rows)
            chart = wandb.plot.line(table, "u", "error", title="world model: u against the true next-state error")
            logger.experiment.log({name: chart, "trainer/global_step": step})
