"""Shared fixtures: tiny real Transformers of each family and small encoded batches."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BertConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    RobertaConfig,
)

from mape_unlearn.core.data.encoding import IGNORE, QABatch

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")  # never reach for the network

VOCAB = 40
ROOT = Path(__file__).resolve().parents[1]

# The longest file (a real MiniLM fine-tuned and unlearned, about 4 minutes on one worker) goes
# first: `make test` hands whole files to its workers in collection order, and the longest one
# started last left the other worker idle for a minute at the end.
LONGEST_FIRST = ("tests/test_classification.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST_FIRST)  # stable


def copy_project(path: Path) -> Path:
    """A Kedro project at ``path`` with this project's configuration, its own data folder and
    an empty MLflow store (``mlflow.db``, where conf/base/mlflow.yml puts it).

    ``src/`` stays empty: the package itself is imported from the installed project.
    """
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    (path / "src").mkdir()
    shutil.copy(_empty_tracking_store(), path / "mlflow.db")
    return path


@functools.cache
def _empty_tracking_store() -> Path:
    """An MLflow SQLite store with its tables made, once per test process: making them (MLflow's
    schema migrations) took 2-4 s for each of the twenty test projects."""
    store = Path(tempfile.mkdtemp(prefix="mlflow-store-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{store.as_posix()}").search_experiments()
    return store


# tiny configs of every supported family; grouped-query attention (2 K/V heads for 4) where the
# family has it, and a bias on Q/K/V for Qwen2 (a slice the masks must own too)
_CAUSAL_CONFIGS = {
    "gpt2": lambda: GPT2Config(
        n_layer=2, n_head=4, n_embd=32, n_inner=48, n_positions=32, **_SPECIAL
    ),
    "llama": lambda: LlamaConfig(**_LLAMA_SHAPE, **_SPECIAL),
    "mistral": lambda: MistralConfig(**_LLAMA_SHAPE, sliding_window=None, **_SPECIAL),
    "qwen2": lambda: Qwen2Config(**_LLAMA_SHAPE, **_SPECIAL),
}
_ENCODER_CONFIGS = {
    "bert": lambda: BertConfig(**ENCODER_SHAPE, vocab_size=VOCAB),
    "roberta": lambda: RobertaConfig(**ENCODER_SHAPE, vocab_size=VOCAB, pad_token_id=1),
}
_SPECIAL = {"vocab_size": VOCAB, "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}
_LLAMA_SHAPE = {
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_size": 32,
    "intermediate_size": 48,
}
ENCODER_SHAPE = {  # a tiny BERT-style encoder, without its vocabulary size
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "hidden_size": 32,
    "intermediate_size": 48,
    "max_position_embeddings": 40,
}
CAUSAL_FAMILIES = tuple(_CAUSAL_CONFIGS)
ENCODER_FAMILIES = tuple(_ENCODER_CONFIGS)


def tiny_model(family: str) -> torch.nn.Module:
    """A tiny random model of ``family``, causal LM or encoder, in eval mode.

    GPT-2 and Llama are built in memory; the others go through ``save_pretrained`` and back
    through the Auto classes, as a user's local model directory would.
    """
    torch.manual_seed(0)
    if family in _ENCODER_CONFIGS:
        built = AutoModel.from_config(_ENCODER_CONFIGS[family]())
        auto = AutoModel
    else:
        built = AutoModelForCausalLM.from_config(_CAUSAL_CONFIGS[family]())
        auto = AutoModelForCausalLM
    if family in ("gpt2", "llama"):
        return built.eval()
    with tempfile.TemporaryDirectory() as tmp:
        built.save_pretrained(tmp)
        return auto.from_pretrained(tmp, local_files_only=True).eval()


def bpe_tokenizer(texts: list[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer like GPT-2's, trained on ``texts``: one special token,
    ``<|endoftext|>`` (BOS, EOS and UNK), and no PAD or SEP token."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=end, eos_token=end, unk_token=end
    )


def save_user_model(path: Path, texts: list[str]) -> Path:
    """A user's model directory: a tiny untrained GPT-2 and its BPE tokenizer, save_pretrained."""
    tokenizer = bpe_tokenizer(texts)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_inner=64,
        n_positions=128,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(params=CAUSAL_FAMILIES)
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return tiny_model(request.param)


def random_batch(n: int = 6, width: int = 12, seed: int = 0) -> QABatch:
    """Random prompts and answers of varying length, right-padded like encode_qa's output."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.zeros(n, width, dtype=torch.long)
    attention_mask = torch.zeros(n, width, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    for i in range(n):
        length = width - (i % 3)
        prompt = 3 + i % 2
        input_ids[i, :length] = torch.randint(5, VOCAB, (length,), generator=generator)
        attention_mask[i, :length] = 1
        labels[i, prompt:length] = input_ids[i, prompt:length]
    facts = labels.clone()
    facts[:, : width - 3] = IGNORE  # the last answer tokens stand for the fact
    return QABatch(input_ids, attention_mask, labels, facts)


@pytest.fixture
def batch() -> QABatch:
    return random_batch()
