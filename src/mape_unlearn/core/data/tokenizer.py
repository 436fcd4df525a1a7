"""Word-level tokenizer trained on the generated QA corpus.

The generated text is lower-case with words and punctuation already separated by single
spaces, so a whitespace word-level vocabulary is exact (no sub-word noise, no unknown words
for the corpus) and tiny, which keeps the from-scratch models small. It is wrapped as a
``transformers`` fast tokenizer so it saves / loads with ``save_pretrained`` /
``AutoTokenizer.from_pretrained``. For question answering it adds no special tokens by itself:
callers assemble ``[BOS] question [SEP] answer [EOS]`` style sequences explicitly. For
classification it wraps a text as ``[BOS] text [SEP]`` and a pair as ``[BOS] a [SEP] b [SEP]``
(BERT's layout, ``[BOS]`` standing for ``[CLS]``), with token types 0 and 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["MODEL_MAX_LENGTH", "SPECIAL_TOKENS", "corpus_texts", "train_word_tokenizer"]

# Order matters: these get ids 0..4.
SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
    "sep_token": "[SEP]",
}
MODEL_MAX_LENGTH = 512

_TEXT_COLUMNS = ("question", "answer", "paraphrased_answer")
_REQUIRED = ("question", "answer")
_LABELLED_TEXT_COLUMNS = ("text", "text_pair")
_LIST_COLUMN = "perturbed_answers"


def corpus_texts(qa: pd.DataFrame) -> list[str]:
    """Return every question, answer, paraphrased answer and perturbed answer in ``qa``.

    The paraphrased and perturbed answers are optional (a user's data may have none). A
    classification table (with a ``label`` column) gives its texts and pair texts.
    """
    if "label" in qa.columns:
        return [str(t) for column in _LABELLED_TEXT_COLUMNS for t in qa.get(column, ())]
    missing = [c for c in _REQUIRED if c not in qa.columns]
    if missing:
        raise ValueError(
            f"qa is missing column(s) {missing}: expected columns {list(_REQUIRED)}, and "
            f"optionally {[_TEXT_COLUMNS[-1], _LIST_COLUMN]}"
        )
    texts: list[str] = []
    for column in _TEXT_COLUMNS:
        texts.extend(str(t) for t in qa.get(column, ()))
    for answers in qa.get(_LIST_COLUMN, ()):
        # A list, or a numpy array after a parquet round trip; never a bare string.
        if isinstance(answers, str):
            raise ValueError(
                f"{_LIST_COLUMN} holds a string {answers!r}: expected a list of strings per row"
            )
        texts.extend(str(t) for t in answers)
    return texts


def train_word_tokenizer(
    texts: Iterable[str], min_frequency: int = 1, classification: bool = False
) -> PreTrainedTokenizerFast:
    """Train a whitespace word-level tokenizer on ``texts``.

    Special tokens get ids 0..4 (pad, unk, bos, eos, sep); words seen fewer than
    ``min_frequency`` times map to ``[UNK]``. Nothing is added on encode, except with
    ``classification`` (the module docstring's layout).
    """
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(
            f"min_frequency={min_frequency!r} is not allowed: expected an integer >= 1"
        )
    if isinstance(texts, str):
        raise ValueError("texts is a single string: expected an iterable of strings")
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts contains non-string item(s) such as {bad[0]!r}: expected str")
    words = {w for t in texts for w in t.split()}
    if not words:
        raise ValueError("texts has no words: expected at least one non-empty string")

    specials = list(SPECIAL_TOKENS.values())
    tokenizer = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(
        vocab_size=len(specials) + len(words),  # never truncate the vocabulary
        min_frequency=min_frequency,
        special_tokens=specials,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if classification:
        bos, sep = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["sep_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {sep}",
            pair=f"{bos} $A {sep} $B:1 {sep}:1",
            special_tokens=[(token, tokenizer.token_to_id(token)) for token in (bos, sep)],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,  # keep "word ." as is: decode(encode(x)) == x
        **SPECIAL_TOKENS,
    )
