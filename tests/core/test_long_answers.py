"""Biography-style answers of the generated people (``data_prep.generator.answers: biography``)
and the environment that trains on them (conf/long_answers)."""

from __future__ import annotations

import hashlib
import re
import string

import pandas as pd
import pytest
from pydantic import ValidationError

from mape_unlearn.core.data import people
from mape_unlearn.core.data.biographies import BIOGRAPHIES, Biography
from mape_unlearn.core.data.encoding import IGNORE, encode_frame, scored_on
from mape_unlearn.core.data.facts import with_facts
from mape_unlearn.core.data.people import N_PERTURBED, generate_people_qa
from mape_unlearn.core.data.tokenizer import corpus_texts, train_word_tokenizer
from mape_unlearn.core.runtime.models import build_model, check_fits
from mape_unlearn.params import GeneratorParams, TrainParams
from mape_unlearn.settings import config_loader
from tests.conftest import ROOT

POOLS = {t.template_id: t.values for t in people.TEMPLATES}
TEXT = re.compile(r"^[a-z0-9',?.]+( [a-z0-9',?.]+)*$")  # lower case, space separated


@pytest.fixture(scope="module")
def qa() -> pd.DataFrame:
    return generate_people_qa(n_people=120, seed=0, answers="biography")


def words(text: str) -> int:
    return sum(1 for word in text.split() if re.search(r"\w", word))


Span = tuple[int, int]


def read_back(template: str, text: str, name: str) -> tuple[dict[str, str], dict[str, Span]]:
    """Each attribute's value in ``text`` written from ``template`` (a regex made of the
    template, independent of the generator's rendering), and each value's character span;
    ``{a_<attribute>}``'s value without its article."""
    surname = name.split()[-1]
    pattern = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if field in ("name", "surname"):
            pattern += re.escape(name if field == "name" else surname)
        elif field:
            pattern += f"(?P<{field}>.+?)"
    match = re.fullmatch(pattern, text)
    assert match is not None, (template, text)
    fields = match.groupdict()
    values = {
        f.removeprefix("a_"): re.sub(r"^an? ", "", v) if f.startswith("a_") else v
        for f, v in fields.items()
    }
    return values, {f.removeprefix("a_"): match.span(f) for f in fields}


def test_answers_are_biographies_of_20_to_40_words(qa: pd.DataFrame) -> None:
    assert len(qa) == 120 * len(BIOGRAPHIES)
    assert list(qa.columns) == list(people.COLUMNS)
    texts = [*qa.answer, *qa.paraphrased_answer, *qa.perturbed_answers.explode()]
    counts = [words(text) for text in texts]
    assert 20 <= min(counts) and max(counts) <= 40
    assert all(TEXT.match(text) for text in [*texts, *qa.question])
    # TOFU's shape: two or three attributes a question, every attribute asked at least twice
    assert {len(b.attributes) for b in BIOGRAPHIES} <= {2, 3}
    asked = pd.Series([a for b in BIOGRAPHIES for a in b.attributes]).value_counts()
    assert set(asked.index) == set(POOLS) and asked.min() >= 2


def test_the_fact_spans_every_value_of_the_answer_and_never_the_name(qa: pd.DataFrame) -> None:
    templates = {b.template_id: b for b in BIOGRAPHIES}
    for row in qa.itertuples():
        template: Biography = templates[row.template]
        values, spans = read_back(template.answer, row.answer, row.person_name)
        assert set(values) == set(template.attributes)
        assert all(values[a] in POOLS[a] for a in values)
        start = min(s for s, _ in spans.values())
        stop = max(e for _, e in spans.values())
        assert row.fact == row.answer[start:stop]
        assert row.fact in row.answer and row.person_name not in row.fact
    kept, rules = with_facts(qa)
    assert rules == {"column": len(qa)} and kept.fact.equals(qa.fact)


def test_paraphrase_and_perturbed_answers_keep_the_positions_with_other_values(
    qa: pd.DataFrame,
) -> None:
    """The paraphrase names the same values in other words; each perturbed answer is the
    paraphrase's wording with another value of every attribute at the same place."""
    templates = {b.template_id: b for b in BIOGRAPHIES}
    for row in qa.itertuples():
        template = templates[row.template]
        truth, _ = read_back(template.answer, row.answer, row.person_name)
        said, _ = read_back(template.paraphrase, row.paraphrased_answer, row.person_name)
        assert said == truth and row.paraphrased_answer != row.answer
        assert len(set(row.perturbed_answers)) == N_PERTURBED
        for perturbed in row.perturbed_answers:
            wrong, _ = read_back(template.paraphrase, perturbed, row.person_name)
            assert all(wrong[a] != truth[a] and wrong[a] in POOLS[a] for a in truth)


def test_a_person_has_one_value_per_attribute_across_questions(qa: pd.DataFrame) -> None:
    templates = {b.template_id: b for b in BIOGRAPHIES}
    seen: dict[tuple[str, str], set[str]] = {}
    for row in qa.itertuples():
        values, _ = read_back(templates[row.template].answer, row.answer, row.person_name)
        for attribute, value in values.items():
            seen.setdefault((row.person_id, attribute), set()).add(value)
    assert len(seen) == 120 * len(POOLS)
    assert all(len(values) == 1 for values in seen.values())


def test_deterministic_in_the_seed(qa: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(qa, generate_people_qa(120, 0, answers="biography"))
    other = generate_people_qa(120, 1, answers="biography")
    assert not other.answer.equals(qa.answer)
    # the same people as the short answers: names are drawn before any value
    short = generate_people_qa(120, 0)
    assert list(qa.person_name.unique()) == list(short.person_name.unique())


def test_fact_tokens_are_the_facts_words(qa: pd.DataFrame) -> None:
    rows = qa.head(16)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    facts = scored_on(encode_frame(tokenizer, rows), "fact").labels
    for i, fact in enumerate(rows.fact):
        assert tokenizer.decode(facts[i][facts[i] != IGNORE].tolist()) == fact


def test_the_default_short_data_is_unchanged() -> None:
    """The default data (and so every cached artifact and figure measured on it) is the one
    generated before biographies existed: the digest of its 480 rows, recorded then."""
    default = generate_people_qa(60, 0)
    pd.testing.assert_frame_equal(default, generate_people_qa(60, 0, answers="short"))
    cells = "\x1f".join(str(v) for row in default.itertuples(index=False) for v in row)
    digest = hashlib.sha256(cells.encode()).hexdigest()
    assert digest == "c15676940884303817f64b0b1e030512f8f2802149cada3056a098df8ac451bd"


def test_answers_must_be_short_or_biography() -> None:
    with pytest.raises(ValueError, match=r"answers='long' is not allowed: expected one of"):
        generate_people_qa(2, answers="long")  # type: ignore[arg-type]
    base = {"n_people": 2, "n_labels": 2, "distinct_values": False, "seed": 0}
    assert GeneratorParams(**base).answers == "short"
    with pytest.raises(ValidationError, match="answers"):
        GeneratorParams(**base, answers="long")


def test_the_long_answers_environment_fits_its_model() -> None:
    """conf/long_answers: its own data root, biography answers, and a model whose positions
    hold its longest question and answer."""
    loader = config_loader(ROOT / "conf", env="long_answers")
    params, catalog = loader["parameters"], loader["catalog"]
    assert catalog["qa_dataset"]["filepath"].startswith("data/long_answers/")
    generator = GeneratorParams(**params["data_prep"]["generator"])
    train = TrainParams(**params["train"])
    assert generator.answers == "biography"
    qa = generate_people_qa(generator.n_people, generator.seed, answers=generator.answers)
    tokenizer = train_word_tokenizer(corpus_texts(qa))
    data = encode_frame(tokenizer, qa)
    model = build_model(train.model_type, train.architecture, tokenizer, train.seed)
    check_fits(model, data, "the long answers")
    default = TrainParams(**config_loader(ROOT / "conf", env="local")["parameters"]["train"])
    assert int(data.attention_mask.sum(1).max()) > 0.8 * default.architecture["n_positions"]
