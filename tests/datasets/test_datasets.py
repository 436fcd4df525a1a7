"""Round trips and atomic-save guarantees of mape_unlearn.datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from kedro.io import DatasetError
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from mape_unlearn.datasets import (
    GGUFCheckpointDataset,
    ModelReleaseDataset,
    PretrainedModelDataset,
    TensorDictDataset,
    TokenizerDataset,
)
from mape_unlearn.datasets import tensors as tensors_module


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def _tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2, n_inner=64)
    return GPT2LMHeadModel(config).eval()


def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3, "alice": 4, "bob": 5}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")


def _assert_state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- model


def test_model_round_trip(tmp_path: Path) -> None:
    model = _tiny_gpt2()
    ds = PretrainedModelDataset(path=str(tmp_path / "model"), model_class="GPT2LMHeadModel")
    assert not ds.exists()
    ds.save(model)
    assert ds.exists()
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert "config.json" in files
    assert any(name.endswith(".safetensors") for name in files)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)

    loaded = ds.load()
    assert isinstance(loaded, GPT2LMHeadModel)
    _assert_state_dicts_equal(model.state_dict(), loaded.state_dict())
    assert _leftovers(tmp_path) == []


def test_model_auto_class_and_overwrite(tmp_path: Path) -> None:
    ds = PretrainedModelDataset(path=str(tmp_path / "model"))  # AutoModelForCausalLM
    ds.save(_tiny_gpt2(seed=0))
    second = _tiny_gpt2(seed=1)
    ds.save(second)
    _assert_state_dicts_equal(second.state_dict(), ds.load().state_dict())
    assert _leftovers(tmp_path) == []


def test_model_failed_save_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny_gpt2()
    ds = PretrainedModelDataset(path=str(tmp_path / "model"))

    def broken_save_pretrained(directory: str, **_: object) -> None:
        (Path(directory) / "config.json").write_text("{")  # half-written
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken_save_pretrained)
    with pytest.raises(DatasetError, match="disk full"):
        ds.save(model)
    assert not (tmp_path / "model").exists()
    assert not ds.exists()
    assert _leftovers(tmp_path) == []


def test_model_failed_overwrite_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _tiny_gpt2(seed=0)
    ds = PretrainedModelDataset(path=str(tmp_path / "model"))
    ds.save(first)

    def broken_write(self: PretrainedModelDataset, model: object, directory: Path) -> None:
        (directory / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("killed midway")

    monkeypatch.setattr(PretrainedModelDataset, "_write", broken_write)
    with pytest.raises(DatasetError, match="killed midway"):
        ds.save(_tiny_gpt2(seed=1))
    _assert_state_dicts_equal(first.state_dict(), ds.load().state_dict())
    assert _leftovers(tmp_path) == []


def test_model_rejects_non_model(tmp_path: Path) -> None:
    ds = PretrainedModelDataset(path=str(tmp_path / "model"))
    with pytest.raises(DatasetError):
        ds.save({"not": "a model"})
    assert not (tmp_path / "model").exists()


def test_model_unknown_class(tmp_path: Path) -> None:
    ds = PretrainedModelDataset(path=str(tmp_path / "model"), model_class="NoSuchModelClass")
    ds.save(_tiny_gpt2())
    with pytest.raises(DatasetError, match="NoSuchModelClass"):
        ds.load()


def test_model_describe() -> None:
    ds = PretrainedModelDataset(
        path="data/06_models/m", model_class="AutoModelForCausalLM", load_args={"dtype": "float32"}
    )
    assert "data/06_models/m" in repr(ds)
    assert "AutoModelForCausalLM" in repr(ds)


def test_model_loads_as_the_class_its_config_names(tmp_path: Path) -> None:
    ds = PretrainedModelDataset(path=str(tmp_path / "model"))
    ds.save(_tiny_gpt2())
    assert type(ds.load()).__name__ == "GPT2LMHeadModel"
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "model" / "config.json").write_text(json.dumps({**config, "architectures": None}))
    with pytest.raises(DatasetError, match="names no architectures: set model_class"):
        ds.load()


# ----------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip(tmp_path: Path) -> None:
    tok = _tiny_tokenizer()
    ds = TokenizerDataset(path=str(tmp_path / "tok"))
    assert not ds.exists()
    ds.save(tok)
    assert ds.exists()
    loaded = ds.load()
    text = "hello alice zebra bob world"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"] == [2, 4, 0, 5, 3]
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.pad_token == "[PAD]"
    assert loaded.unk_token == "[UNK]"
    assert _leftovers(tmp_path) == []


def test_tokenizer_failed_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = TokenizerDataset(path=str(tmp_path / "tok"))

    def broken_write(self: TokenizerDataset, tokenizer: object, directory: Path) -> None:
        (directory / "tokenizer_config.json").write_text("{")
        raise RuntimeError("boom")

    monkeypatch.setattr(TokenizerDataset, "_write", broken_write)
    with pytest.raises(DatasetError, match="boom"):
        ds.save(_tiny_tokenizer())
    assert not (tmp_path / "tok").exists()
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------- tensors


def _tensor_dict() -> dict[str, torch.Tensor]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "mask": torch.tensor([[True, False, True], [False, False, True]]),
        "half": torch.linspace(-2, 2, 7, dtype=torch.float16),
        "bf16": torch.randn(5, dtype=torch.bfloat16),
        "ids": torch.tensor([1, 2, 3], dtype=torch.int64),
        "scalar": torch.tensor(3.5),
        "non_contiguous": base.t(),
        "view_of_base": base[1],  # shares storage with base.t()
        "empty": torch.zeros(0, 3),
    }


def test_tensor_dict_round_trip(tmp_path: Path) -> None:
    data = _tensor_dict()
    ds = TensorDictDataset(filepath=str(tmp_path / "sub" / "masks.safetensors"))
    assert not ds.exists()
    ds.save(data)
    assert ds.exists()
    loaded = ds.load()
    assert loaded.keys() == data.keys()
    for key, value in data.items():
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        assert torch.equal(loaded[key], value), key
        assert loaded[key].device.type == "cpu"
    assert loaded["mask"].dtype == torch.bool
    assert loaded["half"].dtype == torch.float16
    assert _leftovers(tmp_path / "sub") == []


def test_tensor_dict_is_not_pickle(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    TensorDictDataset(filepath=str(path)).save({"x": torch.ones(2)})
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8 : 8 + header_len].startswith(b"{")  # safetensors JSON header


def test_tensor_dict_rejects_bad_input(tmp_path: Path) -> None:
    ds = TensorDictDataset(filepath=str(tmp_path / "t.safetensors"))
    with pytest.raises(DatasetError):
        ds.save([torch.ones(1)])
    with pytest.raises(DatasetError):
        ds.save({"x": [1, 2, 3]})
    with pytest.raises(DatasetError):
        ds.save({1: torch.ones(1)})
    assert not ds.exists()


def test_tensor_dict_failed_save_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.safetensors"
    ds = TensorDictDataset(filepath=str(path))

    def broken_save_file(tensors: dict[str, torch.Tensor], filename: str, **_: object) -> None:
        Path(filename).write_bytes(b"\x00" * 16)  # half-written file
        raise OSError("crash midway")

    monkeypatch.setattr(tensors_module, "save_file", broken_save_file)
    with pytest.raises(DatasetError, match="crash midway"):
        ds.save({"x": torch.ones(3)})
    assert not path.exists()
    assert not ds.exists()
    assert _leftovers(tmp_path) == []

    monkeypatch.undo()
    ds.save({"x": torch.ones(3)})
    monkeypatch.setattr(tensors_module, "save_file", broken_save_file)
    with pytest.raises(DatasetError, match="crash midway"):
        ds.save({"x": torch.zeros(3)})
    assert torch.equal(ds.load()["x"], torch.ones(3))
    assert _leftovers(tmp_path) == []


def test_datasets_from_catalog_config(tmp_path: Path) -> None:
    from kedro.io import DataCatalog

    catalog = DataCatalog.from_config(
        {
            "masks": {
                "type": "mape_unlearn.datasets.TensorDictDataset",
                "filepath": str(tmp_path / "masks.safetensors"),
            },
            "model": {
                "type": "mape_unlearn.datasets.PretrainedModelDataset",
                "path": str(tmp_path / "model"),
                "model_class": "GPT2LMHeadModel",
            },
            "tokenizer": {
                "type": "mape_unlearn.datasets.TokenizerDataset",
                "path": str(tmp_path / "tok"),
            },
        }
    )
    catalog.save("masks", {"m": torch.tensor([True, False])})
    assert torch.equal(catalog.load("masks")["m"], torch.tensor([True, False]))
    assert not catalog.exists("model")


def test_release_holds_model_and_tokenizer_in_one_directory(tmp_path: Path) -> None:
    model, tokenizer = _tiny_gpt2(), _tiny_tokenizer()
    ds = ModelReleaseDataset(path=str(tmp_path / "release"))
    assert not ds.exists()
    ds.save({"model": model, "tokenizer": tokenizer})
    assert ds.exists()
    loaded = ds.load()
    for name, weights in loaded["model"].state_dict().items():
        assert torch.equal(weights, model.state_dict()[name]), name
    assert loaded["tokenizer"].get_vocab() == tokenizer.get_vocab()
    with pytest.raises(DatasetError, match="keys 'model' and 'tokenizer'"):
        ds.save({"model": model})
    assert ds.load()["tokenizer"].get_vocab() == tokenizer.get_vocab()  # nothing half-written


def test_a_missing_gguf_file_is_named_and_the_file_is_never_written(tmp_path: Path) -> None:
    dataset = GGUFCheckpointDataset(str(tmp_path / "model.gguf"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"model.gguf' does not exist: install the package"):
        dataset.load()
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert dataset.exists()
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save({"model": None})
    assert (tmp_path / "model.gguf").read_bytes() == b"GGUF"
