"""The cache-record directory as a catalog entry, so its location is configuration."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from mape_unlearn.caching.manifest import CacheManifest


class CacheManifestDataset(AbstractDataset[None, CacheManifest]):
    """Loads a :class:`CacheManifest` over ``path``; records are written by the runner."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> CacheManifest:
        return CacheManifest(self._path)

    def save(self, data: None) -> None:
        raise DatasetError("the cache manifest is written by the caching runner, not by nodes")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(PurePosixPath(self._path))}
