"""Kedro datasets for Hugging Face models and tokenizers saved with ``save_pretrained``."""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

import transformers
from kedro.io import AbstractDataset, DatasetError
from kedro.utils import load_obj

from mape_unlearn.atomic import atomic_write_dir


def _resolve_class(name: str) -> Any:
    """``AutoModelForCausalLM`` (an attribute of ``transformers``) or a dotted path."""
    cls = load_obj(name) if "." in name else getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise DatasetError(f"'{name}' is not a transformers class with 'from_pretrained'")
    return cls


class PretrainedModelDataset(AbstractDataset[Any, Any]):
    """A ``transformers`` model stored as a ``save_pretrained`` directory (safetensors).

    Saving writes into a temporary sibling directory and swaps it in atomically.
    Loading never touches the network (``local_files_only=True``) and never runs
    repository code unless ``load_args`` sets ``trust_remote_code: true``.

    Example catalog entry::

        unlearned_model:
          type: mape_unlearn.datasets.PretrainedModelDataset
          path: data/06_models/unlearned
          model_class: AutoModelForCausalLM
          load_args:
            dtype: float32
    """

    def __init__(
        self,
        path: str,
        model_class: str = "AutoModelForCausalLM",
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            path: Directory holding ``config.json`` and ``*.safetensors``.
            model_class: Name of a ``transformers`` class (``AutoModelForCausalLM``,
                ``GPT2LMHeadModel``...) or a dotted import path to one.
            load_args: Extra keyword arguments for ``from_pretrained``.
            save_args: Extra keyword arguments for ``save_pretrained``
                (e.g. ``max_shard_size``).
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        self._path = Path(path)
        self._model_class = model_class
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def load(self) -> Any:
        cls = _resolve_class(self._model_class)
        kwargs: dict[str, Any] = {"trust_remote_code": False, **copy.deepcopy(self._load_args)}
        kwargs["local_files_only"] = True
        return cls.from_pretrained(str(self._path), **kwargs)

    def save(self, data: Any) -> None:
        if not hasattr(data, "save_pretrained"):
            raise DatasetError(
                f"PretrainedModelDataset can only save objects with 'save_pretrained', "
                f"got {type(data).__name__}"
            )
        atomic_write_dir(self._path, lambda tmp: self._write(data, tmp))

    def _write(self, model: Any, directory: Path) -> None:
        model.save_pretrained(str(directory), **self._save_args)

    def _exists(self) -> bool:
        return (self._path / "config.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(PurePosixPath(self._path)),
            "model_class": self._model_class,
            "load_args": self._load_args,
            "save_args": self._save_args,
        }


class TokenizerDataset(AbstractDataset[Any, Any]):
    """A ``transformers`` tokenizer stored as a ``save_pretrained`` directory.

    Loads with ``AutoTokenizer.from_pretrained(path, local_files_only=True)``;
    saves atomically like :class:`PretrainedModelDataset`.
    """

    def __init__(
        self,
        path: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            path: Directory holding ``tokenizer_config.json`` and the vocabulary files.
            load_args: Extra keyword arguments for ``AutoTokenizer.from_pretrained``.
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        self._path = Path(path)
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> Any:
        kwargs: dict[str, Any] = {"trust_remote_code": False, **copy.deepcopy(self._load_args)}
        kwargs["local_files_only"] = True
        return transformers.AutoTokenizer.from_pretrained(str(self._path), **kwargs)

    def save(self, data: Any) -> None:
        if not hasattr(data, "save_pretrained"):
            raise DatasetError(
                f"TokenizerDataset can only save objects with 'save_pretrained', "
                f"got {type(data).__name__}"
            )
        atomic_write_dir(self._path, lambda tmp: self._write(data, tmp))

    def _write(self, tokenizer: Any, directory: Path) -> None:
        tokenizer.save_pretrained(str(directory))

    def _exists(self) -> bool:
        return (self._path / "tokenizer_config.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(PurePosixPath(self._path)), "load_args": self._load_args}
