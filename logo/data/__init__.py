"""Dataset format, reader/writer, validation and the shared LightningDataModule."""

from logo.data.datamodule import OfflineMARLDataModule
from logo.data.reader import OfflineDataset, gather_transitions
from logo.data.schema import DatasetSpec
from logo.data.validate import validate_dataset
from logo.data.writer import DatasetWriter

__all__ = ["DatasetSpec", "DatasetWriter", "OfflineDataset", "OfflineMARLDataModule", "gather_transitions",
           "validate_dataset"]
