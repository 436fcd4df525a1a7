"""kedro-datasets' file datasets, saved atomically.

kedro-datasets opens the final path and writes into it: a run killed or failing mid-save
leaves a truncated file there, which the caching runner would take for a finished artifact.
These subclasses let kedro-datasets write the same bytes to a temporary sibling, renamed onto
the path only when complete (:mod:`mape_unlearn.atomic`). Loading, previews, ``metadata``,
``save_args`` and versioning are kedro-datasets' own; only the save path differs.
"""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.text import TextDataset

from mape_unlearn.atomic import atomic_write_dir, atomic_write_file


class _AtomicSave:
    """kedro-datasets' ``save`` aimed at a temporary sibling, then renamed onto the path.

    Local files only: an object store (``s3://`` …) stores an object whole or not at all.
    """

    _protocol: str
    _filepath: PurePosixPath

    def save(self, data: Any) -> None:
        write = super(_AtomicSave, type(self)).save  # kedro-datasets' own save
        if self._protocol != "file":
            write(self, data)
            return
        final = Path(get_filepath_str(self._get_save_path(), self._protocol))

        def write_to(temporary: Path) -> None:
            twin = copy.copy(self)  # the same settings, aimed at the temporary path
            twin._filepath, twin._version = PurePosixPath(temporary), None
            write(twin, data)

        atomic = atomic_write_dir if self._writes_directory(data) else atomic_write_file
        atomic(final, write_to)
        self._invalidate_cache()

    def _writes_directory(self, data: Any) -> bool:
        """Whether ``data`` is saved as a directory of files rather than one file."""
        return False


class AtomicJSONDataset(_AtomicSave, JSONDataset):
    """``json.JSONDataset``, saved atomically."""


class AtomicParquetDataset(_AtomicSave, ParquetDataset):
    """``pandas.ParquetDataset``, saved atomically."""


class AtomicCSVDataset(_AtomicSave, CSVDataset):
    """``pandas.CSVDataset``, saved atomically."""


class AtomicTextDataset(_AtomicSave, TextDataset):
    """``text.TextDataset``, saved atomically."""


class AtomicMatplotlibDataset(_AtomicSave, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset``, saved atomically (a list or dict of figures: one
    directory of images, swapped in whole)."""

    def _writes_directory(self, data: Any) -> bool:
        return isinstance(data, list | dict)
