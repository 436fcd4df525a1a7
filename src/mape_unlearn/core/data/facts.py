"""Fact tokens: the part of each answer that carries its information (docs/method.md §7.1).

Answers share a sentence template ("<name> was born in <year> ."), and a model that never saw a
person still predicts most of its words. Forgetting is measured, stopped and steered on the
fact: a substring of the answer kept in a ``fact`` column. It comes from, in this order:

- ``column``: the data's own fact column (``data_prep.source.columns.fact``; the generator
  writes the attribute value);
- ``perturbed``: the words where the answer (or its paraphrase, whichever is worded like the
  perturbed answers) differs from every perturbed answer — the span between their longest
  shared prefix and suffix — found again in the answer;
- ``frequency``: the answer's words that are neither in the question nor among the words of
  more than ``FREQUENT_SHARE`` of all answers, from the first such word to the last.

A row the ``perturbed`` rule cannot place (its span is not in the answer) falls back to
``frequency``; a row with no such word keeps its whole answer as fact.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import pandas as pd

__all__ = ["FACT", "FACT_RULES", "FREQUENT_SHARE", "fact_span", "with_facts"]

FACT = "fact"
FACT_RULES: tuple[str, ...] = ("column", "perturbed", "frequency")
FREQUENT_SHARE = 0.05  # a word in more answers than this share is template, not fact

_WORD = re.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[re.Match[str]]:
    """Words and punctuation marks with their character offsets."""
    return list(_WORD.finditer(text))


def _lower(matches: Sequence[re.Match[str]]) -> list[str]:
    return [m.group().lower() for m in matches]


def _shared_ends(words: list[str], other: list[str]) -> tuple[int, int]:
    """Lengths of the common prefix and (non-overlapping) common suffix of two word lists."""
    limit = min(len(words), len(other))
    prefix = next((i for i in range(limit) if words[i] != other[i]), limit)
    rest = limit - prefix
    suffix = next((i for i in range(rest) if words[-1 - i] != other[-1 - i]), rest)
    return prefix, suffix


def _differing_span(words: list[str], perturbed: list[list[str]]) -> tuple[int, int]:
    """``[start, stop)`` of the words of ``words`` that some perturbed answer does not share."""
    ends = [_shared_ends(words, other) for other in perturbed]
    start = min(prefix for prefix, _ in ends)
    stop = len(words) - min(suffix for _, suffix in ends)
    return start, max(start, stop)


def _find_run(haystack: list[str], needle: list[str]) -> int | None:
    """Start of the last occurrence of ``needle`` as a contiguous run of ``haystack``."""
    for start in range(len(haystack) - len(needle), -1, -1):
        if haystack[start : start + len(needle)] == needle:
            return start
    return None


def _from_perturbed(answer: str, paraphrase: str | None, perturbed: Sequence[str]) -> str | None:
    """The fact by the ``perturbed`` rule, or None when it cannot be placed in the answer."""
    others = [_lower(_words(text)) for text in perturbed]
    references = [answer] + ([paraphrase] if paraphrase else [])
    best = max(
        references,
        key=lambda text: sum(map(sum, (_shared_ends(_lower(_words(text)), o) for o in others))),
    )
    start, stop = _differing_span(_lower(_words(best)), others)
    if start == stop:
        return None
    answer_words = _words(answer)
    if best is answer:
        return answer[answer_words[start].start() : answer_words[stop - 1].end()]
    span = _lower(_words(best))[start:stop]
    found = _find_run(_lower(answer_words), span)
    if found is None:
        return None
    return answer[answer_words[found].start() : answer_words[found + len(span) - 1].end()]


def _from_frequency(answer: str, question: str, frequent: set[str]) -> str:
    """The fact by the ``frequency`` rule: the whole answer when no word qualifies."""
    asked = set(_lower(_words(question)))
    kept = [
        m
        for m in _words(answer)
        if m.group().lower() not in asked | frequent and re.match(r"\w", m.group())
    ]
    return answer[kept[0].start() : kept[-1].end()] if kept else answer


def _frequent_words(answers: Sequence[str]) -> set[str]:
    counts = Counter(word for text in answers for word in set(_lower(_words(text))))
    return {word for word, n in counts.items() if n > FREQUENT_SHARE * len(answers)}


def with_facts(qa: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``qa`` with a ``fact`` column, and how many rows each rule of ``FACT_RULES`` set.

    A ``fact`` column already there is checked (every fact must be in its answer) and kept.
    """
    if FACT in qa.columns:
        pairs = enumerate(zip(qa[FACT], qa.answer, strict=True))
        missing = [i for i, (fact, answer) in pairs if str(fact) not in answer]
        if missing:
            raise ValueError(
                f"the fact column (data_prep.source.columns.fact) is not part of the answer in "
                f"{len(missing)} row(s), first row {missing[0]}: {qa[FACT].iloc[missing[0]]!r} "
                f"vs {qa.answer.iloc[missing[0]]!r}; expected the words of the answer that carry "
                "its information, or null to derive them"
            )
        return qa.assign(**{FACT: qa[FACT].astype(str)}), {"column": len(qa)}
    frequent = _frequent_words(qa.answer.tolist())
    paraphrases = qa["paraphrased_answer"] if "paraphrased_answer" in qa else [None] * len(qa)
    perturbed = qa["perturbed_answers"] if "perturbed_answers" in qa else [None] * len(qa)
    facts, rules = [], Counter({rule: 0 for rule in FACT_RULES[1:]})
    for question, answer, paraphrase, wrong in zip(
        qa.question, qa.answer, paraphrases, perturbed, strict=True
    ):
        fact = _from_perturbed(answer, paraphrase, list(wrong)) if wrong is not None else None
        rules["perturbed" if fact is not None else "frequency"] += 1
        facts.append(fact if fact is not None else _from_frequency(answer, question, frequent))
    return qa.assign(**{FACT: facts}), dict(rules)


def fact_span(answer: str, fact: str) -> tuple[int, int]:
    """Character ``[start, stop)`` of ``fact`` in ``answer``: its last occurrence on word
    boundaries, else its last occurrence anywhere (answers end with their facts far more often
    than they start with them)."""
    bounded = list(re.finditer(rf"(?<!\w){re.escape(fact)}(?!\w)", answer))
    if bounded:
        return bounded[-1].span()
    start = answer.rfind(fact)
    if start < 0:
        raise ValueError(f"the fact {fact!r} is not part of its answer {answer!r}")
    return start, start + len(fact)
