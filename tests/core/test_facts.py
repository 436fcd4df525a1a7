"""Fact tokens: the rules that find them, and the tokens they mark."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mape_unlearn.core.data.encoding import IGNORE, encode_frame, scored_on
from mape_unlearn.core.data.facts import with_facts
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer


@pytest.mark.parametrize("seed", [0, 1])
def test_perturbed_rule_finds_the_generators_facts(seed: int) -> None:
    """Derived from the perturbed answers, the fact lies inside the attribute value the
    generator wrote on every row, and is all of it on at least 90 % of rows (the rest drop a
    leading article that every perturbed answer shares: a word that tells nothing); over all
    rows it recovers at least 95 % of the value's words."""
    qa = generate_people_qa(100, seed)
    derived, rules = with_facts(qa.drop(columns="fact"))
    assert rules == {"perturbed": len(qa), "frequency": 0}
    inside = [d in g for d, g in zip(derived.fact, qa.fact, strict=True)]
    assert all(inside)
    assert (derived.fact == qa.fact).mean() >= 0.9
    words = sum(len(f.split()) for f in derived.fact) / sum(len(f.split()) for f in qa.fact)
    assert words >= 0.95
    pairs = zip(derived.fact, qa.fact, strict=True)
    dropped = {g.removesuffix(d).split()[0] for d, g in pairs if d != g}
    assert dropped <= {"a", "an", "the"}


def test_frequency_rule_without_perturbed_answers() -> None:
    """Without wrong answers, template words (frequent in answers) and the question's words
    (the name) are left out: the fact is the rest of the answer."""
    qa = generate_people_qa(100, 0).drop(columns=["fact", "perturbed_answers"])
    derived, rules = with_facts(qa.drop(columns="paraphrased_answer"))
    assert rules == {"perturbed": 0, "frequency": len(qa)}
    truth = generate_people_qa(100, 0).fact
    assert all(d in a for d, a in zip(derived.fact, qa.answer, strict=True))
    assert (derived.fact == truth).mean() >= 0.7  # the value, but the article of professions
    row = qa.iloc[0]
    assert not set(derived.fact.iloc[0].split()) & set(row.question.split())


def test_a_users_fact_column_is_kept_and_checked() -> None:
    qa = pd.DataFrame(
        {"question": ["q ?"], "answer": ["it is blue ."], "fact": ["blue"], "person_id": ["a"]}
    )
    kept, rules = with_facts(qa)
    assert kept.fact.tolist() == ["blue"] and rules == {"column": 1}
    with pytest.raises(ValueError, match="not part of the answer in 1 row"):
        with_facts(qa.assign(fact=["red"]))


def test_fact_tokens_are_the_facts_words_only() -> None:
    qa = generate_people_qa(4, 0)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    data = encode_frame(tokenizer, qa)
    facts = scored_on(data, "fact")
    assert torch.equal(scored_on(data, "answer").labels, data.labels)
    for i, (answer, fact) in enumerate(zip(qa.answer, qa.fact, strict=True)):
        marked = facts.labels[i][facts.labels[i] != IGNORE]
        assert tokenizer.decode(marked.tolist()) == fact
        # every fact token is an answer token at the same place
        where = facts.labels[i] != IGNORE
        assert torch.equal(data.labels[i][where], facts.labels[i][where])
        assert len(answer.split()) + 1 == int((data.labels[i] != IGNORE).sum())
    with pytest.raises(ValueError, match="tokens='words' is not allowed"):
        scored_on(data, "words")
