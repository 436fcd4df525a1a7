"""Deterministic fictitious-people QA generator (in the spirit of the TOFU benchmark).

Unlearning needs facts the model can only have learned from our own training data, so that
"forgotten" is measurable: every fact here is about an invented person, drawn from fixed word
lists with ``random.Random(seed)``. Each fact comes with a paraphrased answer and several
plausible but wrong (perturbed) answers, which the evaluation uses to compare the likelihood of
the truth against near misses. All text is lower-case with words and punctuation separated by
single spaces, so a whitespace word-level tokenizer covers it exactly.

By default each value is drawn independently, so people share attribute values (two people born
in the same city); ``distinct_values`` deals each attribute's values like cards instead, so a
value repeats only once every value of the attribute has been dealt.

``answers``: ``short``, one question per attribute answered in a short sentence (the
default), or ``biography``, TOFU-shaped answers of 20-40 words naming two or three attributes
each (core/data/biographies.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from numbers import Integral
from typing import Literal, get_args

import pandas as pd

from mape_unlearn.core.data.biographies import BIOGRAPHIES, biography_texts

__all__ = [
    "COLUMNS",
    "Answers",
    "N_PERTURBED",
    "TEMPLATE_IDS",
    "generate_people_qa",
    "max_people",
]

FIRST_NAMES: tuple[str, ...] = (
    "mara", "tove", "elio", "ansel", "brisa", "corin", "dalia", "edvin", "fenna", "galen",
    "hesper", "ilse", "joren", "kalia", "lisel", "maren", "niko", "odila", "perrin", "quilla",
    "rasmus", "selka", "tamsin", "ulric", "vesna", "wendel", "xara", "yorick", "zelda", "aurel",
    "bettan", "cato", "davin", "elowen", "faro", "greta", "halvar", "isolde", "jarek", "kestrel",
    "leoric", "mirela", "nessa", "orlan", "petra", "ravi", "sorrel", "talia", "ines", "vidar",
    "wren", "ysolde", "zoran", "amara", "bastian", "cleo", "dorian", "esme", "florin", "gwen",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "velden", "ostrova", "quillan", "marek", "thorne", "aldana", "brekke", "castell", "drummond",
    "eskildsen", "farrow", "galloway", "halloran", "ivers", "jovanic", "kastner", "lindqvist",
    "morrow", "nakamura", "okafor", "pellegrin", "rask", "sandoval", "tallis", "underhill",
    "varga", "whitlock", "yarrow", "zamora", "abernathy", "beaumont", "corvin", "delacroix",
    "ellery", "fairweather", "grimaldi", "hawthorne", "ingram", "jansky", "kovacs", "larkin",
    "mendel", "norrland", "ostergaard", "prescott", "quinlan", "rosales", "stavros", "trevane",
    "ulvang", "vasquez", "winslow", "asher", "blackwood", "calloway", "dunmore", "everly",
    "forsberg", "gallant", "holmqvist",
)  # fmt: skip

MOTHER_NAMES: tuple[str, ...] = (
    "ana", "beatrix", "clara", "delphine", "elena", "frida", "gisela", "helga", "ingrid",
    "johanna", "karin", "lucia", "magda", "nora", "ottilie", "paula", "rosa", "sabine", "tereza",
    "ursula", "vera", "wilma", "yvonne", "zofia", "agnes", "bianca", "carmen", "dora", "edith",
    "flora", "hanna", "irene", "judith", "lena", "marta", "olga", "rita", "sylvia", "thea",
    "violet",
)  # fmt: skip

CITIES: tuple[str, ...] = (
    "lisbon", "oslo", "krakow", "porto", "tallinn", "riga", "vilnius", "ghent", "bruges",
    "lyon", "marseille", "turin", "genoa", "naples", "seville", "valencia", "bilbao", "dublin",
    "cork", "glasgow", "edinburgh", "bergen", "aarhus", "malmo", "uppsala", "tampere", "gdansk",
    "brno", "graz", "salzburg", "zagreb", "split", "ljubljana", "sofia", "varna", "thessaloniki",
    "izmir", "tbilisi", "montreal", "quebec", "halifax", "valparaiso", "cusco", "medellin",
    "recife", "mombasa", "zanzibar", "hobart", "dunedin", "kyoto",
)  # fmt: skip

BIRTH_YEARS: tuple[str, ...] = tuple(str(year) for year in range(1930, 2000))

PROFESSIONS: tuple[str, ...] = (
    "novelist", "architect", "cartographer", "violinist", "astronomer", "botanist", "chemist",
    "sculptor", "playwright", "historian", "engineer", "photographer", "composer", "geologist",
    "linguist", "surgeon", "journalist", "economist", "painter", "poet", "marine biologist",
    "watchmaker", "glassblower", "diplomat", "librarian", "archaeologist", "mathematician",
    "pilot", "chef", "translator", "illustrator", "zoologist", "film director", "stage designer",
    "bookbinder", "oceanographer", "philosopher", "luthier", "potter", "meteorologist",
)  # fmt: skip

NOTABLE_WORKS: tuple[str, ...] = (
    "the silent harbor", "the glass orchard", "a winter of lanterns", "the salt road",
    "echoes of the north", "the copper garden", "the last ferry", "songs for a lighthouse",
    "the paper moon atlas", "the hollow crown of ash", "letters from the valley",
    "the iron meadow", "the weaver of tides", "a map of small rivers", "the amber window",
    "the orchard keeper", "the ninth bridge", "the pale cartographer", "a house of violins",
    "the midnight census", "the drowned library", "the clockmaker 's daughter", "red sails",
    "the quiet machine", "the stone psalm", "the wandering tower", "notes on falling snow",
    "the marble fox", "the river of clocks", "the lantern bearer", "the saffron coast",
    "the long field", "the owl and the engine", "a summer in ruins", "the velvet storm",
    "the forgotten shore", "the seventh winter", "the distant bell", "the garden of mirrors",
    "the ferryman 's song", "the broken compass", "the cedar chronicles", "the blue hour",
    "the emerald staircase", "a season of wolves", "the tin orchestra", "the hidden valley",
    "the lamplighter",
)  # fmt: skip

AWARDS: tuple[str, ...] = (
    "golden quill", "silver compass", "northern star", "iron pen", "crystal lyre",
    "amber leaf", "blue meridian", "copper lantern", "white heron", "evening bell",
    "laurel crown", "open book", "granite medal", "harbor light", "silver fern",
    "lighthouse", "black swan", "morning tide", "red kite", "ivory tower", "starling",
    "sea glass", "midsummer", "oak and ash", "golden anchor", "twin rivers", "high pass",
    "winter rose", "bright horizon", "old mill", "tall ship", "green meadow", "mountain ash",
    "silver birch", "polar light", "kingfisher",
)  # fmt: skip

HOBBIES: tuple[str, ...] = (
    "sailing", "bird watching", "playing chess", "beekeeping", "rock climbing", "knitting",
    "fly fishing", "astronomy", "pottery", "gardening", "fencing", "rowing", "calligraphy",
    "collecting stamps", "baking bread", "playing the cello", "hiking", "origami", "archery",
    "woodcarving", "cycling", "restoring clocks", "cave diving", "folk dancing", "kite flying",
    "painting miniatures", "foraging mushrooms", "surfing", "juggling", "composing crosswords",
    "swimming in cold lakes", "building model ships", "growing orchids", "skiing",
    "playing the accordion", "reading old maps", "making cheese", "bookbinding", "running",
    "ice skating",
)  # fmt: skip

COLOURS: tuple[str, ...] = (
    "teal", "crimson", "ochre", "indigo", "amber", "scarlet", "olive", "cobalt", "violet",
    "turquoise", "maroon", "saffron", "emerald", "charcoal", "lilac", "coral", "ivory", "navy",
    "magenta", "mustard", "sage", "rust", "lavender", "cyan", "burgundy", "peach", "slate",
    "mint", "plum", "gold",
)  # fmt: skip


@dataclass(frozen=True)
class _Template:
    """One attribute of a person and how to ask / answer about it."""

    template_id: str
    values: tuple[str, ...]
    question: str
    answer: str
    paraphrase: str


# Format fields: {name} full name, {value} attribute value, {a_value} value with "a"/"an",
# {surname} the person's last name.
TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "birth_year",
        BIRTH_YEARS,
        "in which year was {name} born ?",
        "{name} was born in {value} .",
        "the birth year of {name} is {value} .",
    ),
    _Template(
        "birth_city",
        CITIES,
        "in which city was {name} born ?",
        "{name} was born in {value} .",
        "{value} is the birthplace of {name} .",
    ),
    _Template(
        "profession",
        PROFESSIONS,
        "what does {name} do for a living ?",
        "{name} works as {a_value} .",
        "{name} earns a living as {a_value} .",
    ),
    _Template(
        "notable_work",
        NOTABLE_WORKS,
        "what is the best known work of {name} ?",
        "{name} is best known for {value} .",
        "the best known work of {name} is {value} .",
    ),
    _Template(
        "mother",
        MOTHER_NAMES,
        "what is the name of the mother of {name} ?",
        "the mother of {name} is {value} {surname} .",
        "{name} is the child of {value} {surname} .",
    ),
    _Template(
        "award",
        AWARDS,
        "which award did {name} receive ?",
        "{name} received the {value} award .",
        "the {value} award was given to {name} .",
    ),
    _Template(
        "hobby",
        HOBBIES,
        "what does {name} enjoy doing in spare time ?",
        "in spare time {name} enjoys {value} .",
        "{value} is a favourite pastime of {name} .",
    ),
    _Template(
        "favourite_colour",
        COLOURS,
        "what is the favourite colour of {name} ?",
        "the favourite colour of {name} is {value} .",
        "{name} likes the colour {value} more than any other .",
    ),
)

TEMPLATE_IDS: tuple[str, ...] = tuple(t.template_id for t in TEMPLATES)
N_PERTURBED: int = 5
Answers = Literal["short", "biography"]  # data_prep.generator.answers
COLUMNS: tuple[str, ...] = (
    "person_id",
    "person_name",
    "template",
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answers",
    "fact",
)


def max_people() -> int:
    """Return the largest ``n_people`` for which all full names can be unique."""
    return len(FIRST_NAMES) * len(LAST_NAMES)


def _with_article(value: str) -> str:
    return f"{'an' if value[0] in 'aeiou' else 'a'} {value}"


def _fields(name: str, surname: str, value: str) -> dict[str, str]:
    return {"name": name, "surname": surname, "value": value, "a_value": _with_article(value)}


def _fact(template: _Template, fields: dict[str, str]) -> str:
    """The words of the answer that carry the attribute: its value as the answer writes it
    (with its article, "an architect"), not the person's name or surname."""
    field = "a_value" if "{a_value}" in template.answer else "value"
    return fields[field]


def _validate(n_people: int, seed: int, distinct_values: bool, answers: str) -> None:
    limit = max_people()
    if isinstance(n_people, bool) or not isinstance(n_people, Integral):
        raise ValueError(
            f"n_people={n_people!r} is not allowed: expected an integer between 1 and {limit}"
        )
    if not 1 <= n_people <= limit:
        raise ValueError(
            f"n_people={n_people} is not allowed: expected an integer >= 1 and <= {limit} "
            f"(the number of unique first+last name combinations)"
        )
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed={seed!r} is not allowed: expected an integer")
    if not isinstance(distinct_values, bool):
        raise ValueError(
            f"distinct_values={distinct_values!r} is not allowed: expected true or false"
        )
    if answers not in get_args(Answers):
        raise ValueError(
            f"answers={answers!r} is not allowed: expected one of {list(get_args(Answers))}"
        )


def _dealer(rng: random.Random, values: tuple[str, ...]) -> Callable[[], str]:
    """Deal ``values`` without replacement: a fresh deck, shuffled with ``rng``, whenever the
    last is used up, so each value is dealt once before any is dealt again."""
    deck: list[str] = []

    def deal() -> str:
        if not deck:
            deck.extend(values)
            rng.shuffle(deck)
        return deck.pop()

    return deal


@dataclass(frozen=True)
class _Person:
    person_id: str
    name: str
    surname: str


Draws = dict[str, Callable[[], str]]  # template id -> the next value of that attribute


def _short_rows(rng: random.Random, draw: Draws, person: _Person) -> list[dict[str, object]]:
    """One question per attribute, answered in a short sentence: the default data."""
    rows: list[dict[str, object]] = []
    for template in TEMPLATES:
        value = draw[template.template_id]()
        wrong = rng.sample([v for v in template.values if v != value], N_PERTURBED)
        fields = _fields(person.name, person.surname, value)
        rows.append(
            {
                "person_id": person.person_id,
                "person_name": person.name,
                "template": template.template_id,
                "question": template.question.format(**fields),
                "answer": template.answer.format(**fields),
                "paraphrased_answer": template.paraphrase.format(**fields),
                "perturbed_answers": [
                    template.paraphrase.format(**_fields(person.name, person.surname, w))
                    for w in wrong
                ],
                "fact": _fact(template, fields),
            }
        )
    return rows


def _person_fields(person: _Person, values: dict[str, str]) -> dict[str, str]:
    """A biography's fields: the person's names and each attribute's value, bare and with
    its article."""
    articled = {f"a_{attribute}": _with_article(v) for attribute, v in values.items()}
    return {"name": person.name, "surname": person.surname, **values, **articled}


def _biography_rows(rng: random.Random, draw: Draws, person: _Person) -> list[dict[str, object]]:
    """Biography questions (core/data/biographies.py): the person's attributes drawn once,
    each perturbed answer with another value of every attribute its question names."""
    values = {template.template_id: draw[template.template_id]() for template in TEMPLATES}
    pools = {template.template_id: template.values for template in TEMPLATES}
    rows: list[dict[str, object]] = []
    for biography in BIOGRAPHIES:
        wrong = {
            a: rng.sample([v for v in pools[a] if v != values[a]], N_PERTURBED)
            for a in biography.attributes
        }
        perturbed = [
            _person_fields(person, values | {a: w[k] for a, w in wrong.items()})
            for k in range(N_PERTURBED)
        ]
        texts = biography_texts(biography, _person_fields(person, values), perturbed)
        rows.append(
            {
                "person_id": person.person_id,
                "person_name": person.name,
                "template": biography.template_id,
                **texts,
            }
        )
    return rows


def generate_people_qa(
    n_people: int = 100, seed: int = 0, distinct_values: bool = False, answers: Answers = "short"
) -> pd.DataFrame:
    """Generate a QA table about ``n_people`` fictitious people, deterministic in ``seed``.

    Returns one row per (person, template), ordered by person then template, with columns
    ``COLUMNS``. ``perturbed_answers`` holds ``N_PERTURBED`` distinct wrong answers phrased
    like ``paraphrased_answer`` but with another value of the same attribute: as in TOFU, the
    truth ratio then compares facts, not the familiarity of the wording.

    ``distinct_values``: deal each attribute's values without replacement instead of drawing
    them independently; up to ``n_people`` = 30 (the shortest value list, the colours) no two
    people then share any value, and beyond it each value's count differs by at most one.
    ``answers``: ``short`` (one attribute a row, ``TEMPLATES``) or ``biography`` (two or three
    a row, core/data/biographies.py's ``BIOGRAPHIES``).
    """
    _validate(n_people, seed, distinct_values, answers)
    n_people, seed = int(n_people), int(seed)  # also accept numpy integers
    rng = random.Random(seed)
    n_last = len(LAST_NAMES)
    name_codes = rng.sample(range(max_people()), n_people)
    width = max(3, len(str(n_people - 1)))  # "p000"; wider only beyond 1000 people
    if distinct_values:
        draw = {t.template_id: _dealer(rng, t.values) for t in TEMPLATES}
    else:  # independent draws, the rng calls of the default since the start (cached data)
        draw = {t.template_id: partial(rng.choice, t.values) for t in TEMPLATES}
    person_rows = _biography_rows if answers == "biography" else _short_rows
    rows: list[dict[str, object]] = []
    for index, code in enumerate(name_codes):
        surname = LAST_NAMES[code % n_last]
        name = f"{FIRST_NAMES[code // n_last]} {surname}"
        rows += person_rows(rng, draw, _Person(f"p{index:0{width}d}", name, surname))
    return pd.DataFrame(rows, columns=list(COLUMNS))
