"""Kedro datasets for Hugging Face models and tokenizers saved with ``save_pretrained``."""

from __future__ import annotations

import copy
import json
from pathlib import Path, PurePosixPath
from typing import Any

import transformers
from kedro.io import AbstractDataset, DatasetError
from kedro.utils import load_obj

from mape_unlearn.atomic import atomic_write_dir

# What a save_pretrained directory must hold to load (any one pattern of each group).
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.*")


def _check_directory(path: Path, what: str, required: dict[str, tuple[str, ...]]) -> None:
    """Name what is missing from a ``save_pretrained`` directory before transformers tries."""
    if not path.is_dir():
        raise DatasetError(
            f"the {what} directory '{path}' does not exist: expected a save_pretrained directory"
        )
    for kind, patterns in required.items():
        if not any(next(path.glob(pattern), None) for pattern in patterns):
            raise DatasetError(
                f"the {what} directory '{path}' has no {kind} (none of {list(patterns)}): save "
                f"them into it with {what}.save_pretrained(path)"
            )


def _refuse_save(path: Path, what: str) -> None:
    raise DatasetError(
        f"the {what} directory '{path}' is read-only (read_only: true in the catalog): it is "
        f"never written. A node tried to save a {what} there: with your own model, set "
        "`train.original: pretrained` in the same environment, so that the original model and "
        "its tokenizer are loaded, not trained"
    )


def _resolve_class(name: str) -> Any:
    """``AutoModelForCausalLM`` (an attribute of ``transformers``) or a dotted path."""
    cls = load_obj(name) if "." in name else getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise DatasetError(f"'{name}' is not a transformers class with 'from_pretrained'")
    return cls


class PretrainedModelDataset(AbstractDataset[Any, Any]):
    """A ``transformers`` model stored as a ``save_pretrained`` directory (safetensors).

    Saving writes into a temporary sibling directory and swaps it in atomically;
    ``read_only: true`` (a user's model) refuses every save instead. Loading never touches the
    network (``local_files_only=True``) and never runs repository code unless ``load_args``
    sets ``trust_remote_code: true``; a directory without config or weights is named.

    Example catalog entry::

        unlearned_model:
          type: mape_unlearn.datasets.PretrainedModelDataset
          path: data/06_models/unlearned
          load_args:
            dtype: float32
    """

    def __init__(
        self,
        path: str,
        model_class: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        """
        Args:
            path: Directory holding ``config.json`` and ``*.safetensors``.
            model_class: Name of a ``transformers`` class (``AutoModelForCausalLM``,
                ``AutoModelForSequenceClassification``...) or a dotted import path to one;
                by default the class ``config.json`` names (``architectures``), so a causal
                LM and a classifier load alike.
            load_args: Extra keyword arguments for ``from_pretrained``.
            save_args: Extra keyword arguments for ``save_pretrained``
                (e.g. ``max_shard_size``).
            metadata: Free-form metadata (used by kedro-viz), ignored here.
            read_only: Refuse to save: the directory is a user's model, never overwritten.
        """
        self._path = Path(path)
        self._model_class = model_class
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        self._read_only = read_only

    def load(self) -> Any:
        _check_directory(self._path, "model", {"config": ("config.json",), "weights": WEIGHT_FILES})
        cls = _resolve_class(self._model_class or self._saved_class())
        kwargs: dict[str, Any] = {"trust_remote_code": False, **copy.deepcopy(self._load_args)}
        kwargs["local_files_only"] = True
        return cls.from_pretrained(str(self._path), **kwargs)

    def _saved_class(self) -> str:
        """The class ``save_pretrained`` recorded in ``config.json``."""
        architectures = json.loads((self._path / "config.json").read_text()).get("architectures")
        if not architectures:
            raise DatasetError(
                f"'{self._path / 'config.json'}' names no architectures: set model_class in "
                "the catalog entry, e.g. AutoModelForCausalLM"
            )
        return architectures[0]

    def save(self, data: Any) -> None:
        if self._read_only:
            _refuse_save(self._path, "model")
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
            "read_only": self._read_only,
        }


class TokenizerDataset(AbstractDataset[Any, Any]):
    """A ``transformers`` tokenizer stored as a ``save_pretrained`` directory.

    Loads with ``AutoTokenizer.from_pretrained(path, local_files_only=True)``;
    saves atomically, or refuses to, like :class:`PretrainedModelDataset`.
    """

    def __init__(
        self,
        path: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        """
        Args:
            path: Directory holding ``tokenizer_config.json`` and the vocabulary files.
            load_args: Extra keyword arguments for ``AutoTokenizer.from_pretrained``.
            metadata: Free-form metadata (used by kedro-viz), ignored here.
            read_only: Refuse to save: the directory is a user's model, never overwritten.
        """
        self._path = Path(path)
        self._load_args = dict(load_args or {})
        self.metadata = metadata
        self._read_only = read_only

    def load(self) -> Any:
        _check_directory(self._path, "tokenizer", {"tokenizer files": TOKENIZER_FILES})
        kwargs: dict[str, Any] = {"trust_remote_code": False, **copy.deepcopy(self._load_args)}
        kwargs["local_files_only"] = True
        return transformers.AutoTokenizer.from_pretrained(str(self._path), **kwargs)

    def save(self, data: Any) -> None:
        if self._read_only:
            _refuse_save(self._path, "tokenizer")
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
        return {
            "path": str(PurePosixPath(self._path)),
            "load_args": self._load_args,
            "read_only": self._read_only,
        }


class ModelReleaseDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A model and its tokenizer in one ``save_pretrained`` directory: what a user ships, since
    ``AutoModelFor….from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` both
    read it. The data is ``{"model": ..., "tokenizer": ...}``; both are written into one
    temporary directory swapped in atomically, and load as :class:`PretrainedModelDataset`
    (the class ``config.json`` names) and :class:`TokenizerDataset` load them.
    """

    def __init__(
        self,
        path: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            path: The directory to write.
            load_args: Extra keyword arguments for the model's ``from_pretrained``.
            metadata: Free-form metadata (used by kedro-viz), ignored here.
        """
        self._path = Path(path)
        self._model = PretrainedModelDataset(path, load_args=load_args)
        self._tokenizer = TokenizerDataset(path)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        return {"model": self._model.load(), "tokenizer": self._tokenizer.load()}

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or set(data) != {"model", "tokenizer"}:
            raise DatasetError(
                "ModelReleaseDataset saves a dict with the keys 'model' and 'tokenizer', got "
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )

        def write(directory: Path) -> None:
            self._model._write(data["model"], directory)
            self._tokenizer._write(data["tokenizer"], directory)

        atomic_write_dir(self._path, write)

    def _exists(self) -> bool:
        return self._model.exists() and self._tokenizer.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(PurePosixPath(self._path))}
