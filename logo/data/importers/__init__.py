"""Importers of published offline MARL datasets into logo's zarr format (``logo data import``).

Each format module provides ``read(src, **options) -> ImportSource``; :func:`import_dataset`
writes the result atomically and validates it. Formats: ``og-marl`` (flashbax vaults),
``cfcql`` (CFCQL's SMAC HDF5), ``omiga`` (OMIGA's MaMuJoCo HDF5), ``omar`` (OMAR's per-agent npy).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from logo.data.importers.base import Episode, ImportFormatError, ImportSource, write_episodes
from logo.errors import LogoError

FORMATS = {
    "og-marl": "logo.data.importers.vault",
    "cfcql": "logo.data.importers.cfcql",
    "omiga": "logo.data.importers.omiga",
    "omar": "logo.data.importers.omar",
}

__all__ = ["FORMATS", "Episode", "ImportFormatError", "ImportSource", "import_dataset", "read_source"]


def read_source(fmt: str, src: str | Path, **options: Any) -> ImportSource:
    """Open ``src`` as format ``fmt`` (see FORMATS); raises a LogoError naming what is wrong."""
    if fmt not in FORMATS:
        raise LogoError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if not Path(src).exists():
        raise LogoError(f"{src}: no such file or directory")
    return importlib.import_module(FORMATS[fmt]).read(Path(src), **options)


def import_dataset(fmt: str, src: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True,
                   **options: Any) -> tuple[Path, ImportSource]:
    """Convert ``src`` to a validated logo dataset at ``out``; returns its path and the source's report."""
    source = read_source(fmt, src, **options)
    attrs = {"format": fmt, "source_path": str(src), "mapping": source.mapping,
             "options": {k: v for k, v in options.items() if v is not None}}
    path = write_episodes(out, source.spec, source.episodes(), source.n_episodes, overwrite=overwrite,
                          progress=progress, obs_mask=source.obs_mask, attrs=attrs)
    return path, source
