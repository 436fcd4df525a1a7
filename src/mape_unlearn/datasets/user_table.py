"""A table the user brings (their QA data, a deletion request), read-only, in common formats."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from mape_unlearn.core.data.splits import ID_LIST

# File suffix -> format; a directory is a Hugging Face `datasets` directory (save_to_disk).
SUFFIXES = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "txt",
}
FORMATS = (*SUFFIXES.values(), "hf_disk")


def _id_list(values: list[str]) -> pd.DataFrame:
    """A list of ids (a .txt file, a one-column CSV) whose first line may be a header: the
    column is ``ID_LIST``, and the node that knows the data's ids decides about the header."""
    return pd.DataFrame({ID_LIST: [v.strip() for v in values if v.strip()]}, dtype=object)


def _read_csv(path: Path) -> pd.DataFrame:
    first = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, nrows=2)
    if first.shape[1] == 1:  # one column: a list of ids, with or without a header
        return _id_list(pd.read_csv(path, dtype=str, keep_default_na=False, header=None)[0])
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _read(path: Path, format: str) -> pd.DataFrame:
    # Texts and ids are read as written, not guessed as numbers or dates ("007" stays "007").
    if format == "txt":  # one id per line; blank lines ignored
        return _id_list(path.read_text(encoding="utf-8-sig").splitlines())
    if format == "json":
        return pd.read_json(path, dtype=False)
    if format == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    if format == "csv":
        return _read_csv(path)
    if format == "parquet":
        return pd.read_parquet(path)
    import datasets  # only here: importing it costs seconds on every Kedro start-up

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if len(data) != 1:
            raise DatasetError(
                f"the datasets directory '{path}' holds the splits {list(data)}: expected one; "
                "save the split to use, e.g. data['train'].save_to_disk(path)"
            )
        (data,) = data.values()
    return data.to_pandas()


def _is_empty(path: Path) -> bool:
    return not any(path.iterdir()) if path.is_dir() else path.stat().st_size == 0


class UserTableDataset(AbstractDataset[None, pd.DataFrame]):
    """A user's table as a ``DataFrame``: JSON (a list of records), JSON lines, CSV, Parquet or
    a Hugging Face ``datasets`` directory saved with ``save_to_disk``; or a list of ids: a
    ``.txt`` file (one id per line, blank lines ignored) or a one-column CSV, whose single
    column is ``ID_LIST`` and whose first line may be a header (decided where the data's ids
    are known: ``core.data.splits.listed_ids``).

    Read-only: the project never writes the user's data, and saving raises. A missing or empty
    file stops the run with its path, not with a parser's message.

    Example catalog entry::

        qa_source:
          type: mape_unlearn.datasets.UserTableDataset
          path: /data/my_qa.jsonl      # format from the suffix, or `format: hf_disk` etc.
    """

    def __init__(
        self, path: str, format: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """
        Args:
            path: The file, or the ``save_to_disk`` directory.
            format: One of ``FORMATS``; by default from the suffix (a directory: ``hf_disk``).
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        if format is not None and format not in FORMATS:
            raise DatasetError(f"format={format!r} is not allowed: expected one of {FORMATS}")
        self._path = Path(path)
        self._format = format
        self.metadata = metadata

    def _resolved_format(self) -> str:
        if self._format is not None:
            return self._format
        if self._path.is_dir():
            return "hf_disk"
        if self._path.suffix.lower() not in SUFFIXES:
            raise DatasetError(
                f"cannot tell the format of '{self._path}' from its suffix: expected one of "
                f"{sorted(SUFFIXES)} or a datasets directory, or set `format` to one of {FORMATS}"
            )
        return SUFFIXES[self._path.suffix.lower()]

    def load(self) -> pd.DataFrame:
        if not self._path.exists():
            raise DatasetError(
                f"the data file '{self._path}' does not exist: put your file there, or point "
                "this catalog entry's `path` at it (conf/<env>/catalog.yml)"
            )
        if _is_empty(self._path):
            raise DatasetError(f"the data file '{self._path}' is empty: expected rows")
        frame = _read(self._path, self._resolved_format())
        if frame.empty:
            raise DatasetError(
                f"the data file '{self._path}' is empty: it has no rows (columns found: "
                f"{list(frame.columns)})"
            )
        return frame

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError(
            f"'{self._path}' is the user's data and read-only: the project never writes it"
        )

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(PurePosixPath(self._path)), "format": self._format}
