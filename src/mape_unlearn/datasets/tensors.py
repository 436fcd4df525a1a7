"""Kedro dataset for ``dict[str, torch.Tensor]`` stored as one safetensors file."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors.torch import load_file, save_file

from mape_unlearn.atomic import atomic_write_file


def _prepare(data: Any) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; tensors sharing storage are cloned
    (safetensors refuses shared memory)."""
    if not isinstance(data, dict):
        raise DatasetError(f"TensorDictDataset saves dict[str, Tensor], got {type(data).__name__}")
    out: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DatasetError(
                f"TensorDictDataset saves dict[str, Tensor]; entry {key!r} is "
                f"{type(key).__name__} -> {type(value).__name__}"
            )
        tensor = value.detach().to("cpu").contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if tensor.numel() and ptr in seen_storage:
            tensor = tensor.clone()
        elif tensor.numel():
            seen_storage.add(ptr)
        out[key] = tensor
    return out


class TensorDictDataset(AbstractDataset[dict[str, torch.Tensor], dict[str, torch.Tensor]]):
    """A ``dict[str, torch.Tensor]`` saved as a single ``.safetensors`` file.

    No pickling: ``safetensors.torch.save_file`` / ``load_file``. All dtypes that
    safetensors supports round-trip, ``torch.bool`` and ``torch.float16`` included.
    Saves are atomic (temporary sibling file, then ``os.replace``). Loads go to CPU.

    Example catalog entry::

        forget_masks:
          type: mape_unlearn.datasets.TensorDictDataset
          filepath: data/04_feature/forget_masks.safetensors
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """
        Args:
            filepath: Path of the ``.safetensors`` file.
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, torch.Tensor]:
        return load_file(str(self._filepath), device="cpu")

    def save(self, data: dict[str, torch.Tensor]) -> None:
        tensors = _prepare(data)
        atomic_write_file(self._filepath, lambda tmp: self._write(tensors, tmp))

    def _write(self, tensors: dict[str, torch.Tensor], path: Path) -> None:
        save_file(tensors, str(path))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(PurePosixPath(self._filepath))}
