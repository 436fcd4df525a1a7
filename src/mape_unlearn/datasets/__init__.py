"""Custom Kedro datasets; every save is atomic (temporary sibling, then rename)."""

from mape_unlearn.datasets.cache_manifest import CacheManifestDataset
from mape_unlearn.datasets.files import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicTextDataset,
)
from mape_unlearn.datasets.gguf import GGUFCheckpointDataset
from mape_unlearn.datasets.pretrained import (
    ModelReleaseDataset,
    PretrainedModelDataset,
    TokenizerDataset,
)
from mape_unlearn.datasets.tensors import TensorDictDataset
from mape_unlearn.datasets.user_table import UserTableDataset

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicMatplotlibDataset",
    "AtomicParquetDataset",
    "AtomicTextDataset",
    "CacheManifestDataset",
    "GGUFCheckpointDataset",
    "ModelReleaseDataset",
    "PretrainedModelDataset",
    "TensorDictDataset",
    "TokenizerDataset",
    "UserTableDataset",
]
