"""Errors a user can fix. The CLI prints them as one clear message, without a traceback."""

from collections.abc import Mapping
from typing import Any


class LogoError(Exception):
    """Base class for errors caused by input (files, configs, arguments), not by bugs."""


class DatasetError(LogoError):
    """A dataset is missing, malformed or inconsistent; the message names each array at fault."""

    def __init__(self, path: str, problems: list[str], hint: str = ""):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid dataset {self.path}:\n{lines}" + (f"\n{hint}" if hint else ""))


def check_fits(hparams: Mapping[str, Any], expected: Mapping[str, Any], what: str, target: str,
               sides: tuple[str, str] = ("model", "dataset"), hint: str = "") -> None:
    """Raise a LogoError naming every dim where ``hparams`` differ from ``expected`` (keys hparams lacks are skipped).

    Example message: ``BCPolicy does not fit dataset d.zarr (obs_dim: model 18, dataset 12)``, followed by
    ``; {hint}`` when a hint (the fix) is given.
    """
    wrong = {k: (hparams[k], v) for k, v in expected.items() if k in hparams and hparams[k] != v}
    if wrong:
        detail = ", ".join(f"{k}: {sides[0]} {mine}, {sides[1]} {theirs}" for k, (mine, theirs) in wrong.items())
        raise LogoError(f"{what} does not fit {target} ({detail})" + (f"; {hint}" if hint else ""))
