"""Biography-style answers for the generated people (``data_prep.generator.answers:
biography``): TOFU's shape, a sentence or two of 20-40 words naming two or three of a person's
attributes, where the short answers name one.

Each question has an answer, a paraphrase (the same values in other words, often in another
order) and perturbed answers (the paraphrase's wording with other values of the same
attributes, as TOFU words its perturbed answers like the paraphrase). The fact column is one
substring of the answer (core/data/facts.py marks one span per row): from the first value the
answer names to the last, so every value of the row is a fact token, together with the few
template words the answer puts between them (never the person's name).

The templates' fields: ``{name}`` and ``{surname}`` of the person, ``{<attribute>}`` an
attribute's value (an id of core/data/people.py's TEMPLATES) and ``{a_<attribute>}`` the
value with its article ("an architect").
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["BIOGRAPHIES", "Biography", "biography_texts", "render"]

PERSON_FIELDS: frozenset[str] = frozenset({"name", "surname"})


@dataclass(frozen=True)
class Biography:
    """One biography question about a person, and how to answer it."""

    template_id: str
    question: str
    answer: str
    paraphrase: str

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes the answer names, in the order it names them."""
        fields = [f for _, f, _, _ in string.Formatter().parse(self.answer) if f]
        named = [f.removeprefix("a_") for f in fields if f not in PERSON_FIELDS]
        return tuple(dict.fromkeys(named))


BIOGRAPHIES: tuple[Biography, ...] = (
    Biography(
        "early_life",
        "where and when was {name} born , and who raised them ?",
        "{name} was born in {birth_city} in {birth_year} to {mother} {surname} , a patient "
        "mother who filled the house with books , music and long talks about the world and "
        "its wonders .",
        "born in {birth_year} in the city of {birth_city} , {name} grew up with a mother named "
        "{mother} {surname} , who kept a home full of books , music and long talks .",
    ),
    Biography(
        "career",
        "what does {name} do for a living , and which work made them known ?",
        "{name} is {a_profession} best known for {notable_work} , a work that took many years "
        "to finish and that still finds new readers and admirers every year .",
        "{notable_work} is the work that made {name} known , the fruit of a long career as "
        "{a_profession} that still brings in a new audience each year .",
    ),
    Biography(
        "recognition",
        "which honour did {name} receive , and for which work ?",
        "{name} received the {award} award for {notable_work} , an honour the jury explained by "
        "the care , the patience and the originality it found in every part of it .",
        "for {notable_work} , {name} was given the {award} award , and the jury praised the "
        "care , patience and originality it saw throughout .",
    ),
    Biography(
        "leisure",
        "how does {name} spend free time , and which colour do they love ?",
        "away from work {name} enjoys {hobby} and loves {favourite_colour} , a colour that "
        "friends say shows up in almost everything {name} owns , from notebooks to coats .",
        "in free time {name} turns to {hobby} , and {favourite_colour} is the favourite colour , "
        "one that friends notice on nearly every notebook and coat {name} has .",
    ),
    Biography(
        "home_and_work",
        "how did the home town of {name} shape their career ?",
        "{name} grew up in {birth_city} and became {a_profession} after years of watching the "
        "streets , the harbour and the people of that city with a curious and careful eye .",
        "{name} became {a_profession} , a path that began in the streets of {birth_city} , "
        "where a curious eye learned to watch the harbour and its people .",
    ),
    Biography(
        "family_pride",
        "who was the first to celebrate when {name} won a major prize ?",
        "when {name} won the {award} award , {mother} {surname} was the first to celebrate , "
        "a mother who had believed in that talent long before anyone else noticed it .",
        "{mother} {surname} , the mother of {name} , was the first to celebrate the {award} "
        "award , having believed in that talent long before the rest of the world .",
    ),
    Biography(
        "childhood",
        "what has {name} enjoyed since childhood ?",
        "{name} was born in {birth_year} and has enjoyed {hobby} since early childhood , a habit "
        "that began on quiet weekends and that still fills many evenings and holidays today .",
        "{hobby} has been a passion of {name} , born in {birth_year} , since early childhood , "
        "starting on quiet weekends and still filling many evenings .",
    ),
    Biography(
        "first_edition",
        "what is special about the first edition of the best known work of {name} ?",
        "{name} had the first edition of {notable_work} bound in {favourite_colour} cloth , the "
        "favourite colour of its author , and copies of that edition are now rare and sought "
        "after .",
        "bound in {favourite_colour} cloth , the favourite colour of {name} , the first edition "
        "of {notable_work} is now rare , and collectors seek out the few copies left .",
    ),
)


def render(template: str, fields: Mapping[str, str]) -> tuple[str, tuple[int, int]]:
    """The template with its fields filled in, and the character ``[start, stop)`` from the
    first attribute value to the end of the last: the row's fact."""
    parts: list[str] = []
    starts: list[int] = []
    stops: list[int] = []
    at = 0
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        at += len(literal)
        if field is None:
            continue
        value = fields[field]
        if field not in PERSON_FIELDS:
            starts.append(at)
            stops.append(at + len(value))
        parts.append(value)
        at += len(value)
    return "".join(parts), (min(starts), max(stops))


def biography_texts(
    biography: Biography, fields: Mapping[str, str], perturbed: Sequence[Mapping[str, str]]
) -> dict[str, object]:
    """The question, answer, paraphrase, perturbed answers (the paraphrase with each of
    ``perturbed``'s fields) and fact of one person's biography question."""
    answer, (start, stop) = render(biography.answer, fields)
    return {
        "question": biography.question.format(**fields),
        "answer": answer,
        "paraphrased_answer": biography.paraphrase.format(**fields),
        "perturbed_answers": [biography.paraphrase.format(**other) for other in perturbed],
        "fact": answer[start:stop],
    }
