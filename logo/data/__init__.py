"""Dataset format, reader/writer, validation and the shared LightningDataModule.

Names are imported on first use, so tools that only read or write zarr (``logo collect``,
``logo data``) do not pay for importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetSpec": "logo.data.schema",
    "DatasetWriter": "logo.data.writer",
    "OfflineDataset": "logo.data.reader",
    "OfflineMARLDataModule": "logo.data.datamodule",
    "gather_transitions": "logo.data.reader",
    "validate_dataset": "logo.data.validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'logo.data' has no attribute {name!r}")
