"""Fact sentences: one plain sentence per planned point, from its verified value only, and the write-up that brings
a short description up to its length floor with them.

They read the product by its own noun ("These tshirts are made of cotton", "This wall shelf measures 80 cm") and,
where the catalog has one, its brand ("Puma cuts these tshirts to a regular fit"), with the verbs agreeing. With
"It comes in ..." for everything, every page of a catalog shared the same sentences (Self-BLEU: issue 17); a
product's own noun and brand keep them apart, and the template is chosen per product and point.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from web.copywriter.facts import CopyFacts
from web.copywriter.plan import Point, category_kind, family
from web.copywriter.polish import problems

# {it} {is} {has} {s} {this} {them} {its} agree with the product's noun; {Brand} templates need a brand.
TEMPLATES = {
    "identity": ("The {title} from {brand} is part of our {kind} range.", "Meet the {title} by {brand}, from our "
                 "{kind} range.", "From {brand} comes the {title}, one of our {kind} picks.",
                 "{brand} makes the {title}.", "This is the {title}, a {kind} by {brand}.",
                 "Our {kind} selection includes the {title} from {brand}."),
    "identity_nobrand": ("Meet the {title}, from our {kind} range.", "Find the {title} in our {kind} range.",
                         "Say hello to the {title}, one of our {kind} picks.", "This is the {title}.",
                         "The {title} joins our {kind} selection.", "Here is the {title}, a {kind} worth a look."),
    "colour": ("{It} come{s} in {value}.", "{This} {noun} {is} finished in {value}.", "The {noun} {is} done in "
               "{value}.", "You get {this} {noun} in {value}.", "{It} {is} {value}.", "{Brand} makes {this} {noun} "
               "in {value}.", "The shade here is {value}.", "{This} {noun} {is} in {value}."),
    "material": ("{It} {is} made of {value}.", "The {noun} {is} made from {value}.", "{Brand} makes {this} {noun} "
                 "from {value}.", "{This} {noun} {is} crafted from {value}.", "{Value} is what {this} {noun} {is} "
                 "made of.", "{It} {is} built from {value}.", "The material of {this} {noun} is {value}.",
                 "For the material, {Brand} chose {value}."),
    "size": ("{It} measure{s} {value}.", "The {noun} measure{s} {value}.", "{This} {noun} {is} {value}.",
             "In size, {this} {noun} {is} {value}.", "{Its} dimensions are {value}.", "The size is {value}."),
    "pattern": ("{It} {has} a {value} look.", "The design of {this} {noun} is {value}.", "{This} {noun} {is} "
                "{value}.", "Expect a {value} design on {this} {noun}.", "The look is {value}.",
                "{Brand} gives {this} {noun} a {value} look."),
    "fit": ("{It} {has} a {value}.", "{This} {noun} {is} cut for a {value}.", "The cut is a {value}.",
            "Expect a {value} from {this} {noun}.", "{Brand} cuts {this} {noun} to a {value}.",
            "The {noun} sit{s} with a {value}.", "{This} {noun} {is} made in a {value}."),
    "use": ("{It} suit{s} {value} wear.", "{This} {noun} {is} a good pick for {value} days.", "Reach for {them} on "
            "{value} days.", "Wear {them} for {value} occasions.", "The {noun} {is} made with {value} use in mind.",
            "{It} {is} at home in {value} settings.", "{Brand} designed {this} {noun} for {value} wear."),
    "audience": ("{It} {is} made for {value}.", "{This} {noun} {is} designed for {value}.", "{Brand} made {this} "
                 "{noun} with {value} in mind.", "The {noun} {is} meant for {value}.", "{This} {noun} {is} one for "
                 "{value}.", "{It} {is} a choice for {value}."),
    "printed": ("The package reads {value}.", "The pack says {value}.", "The label reads {value}.",
                "Look for {value} on the pack.", "The front of the pack says {value}.",
                "You will see {value} printed on {them}."),
    "price": ("{It} {is} priced at {value}.", "{It} cost{s} {value}.", "{This} {noun} sell{s} for {value}.",
              "{It} {is} yours for {value}.", "The price is {value}.", "The {noun} {is} yours for {value}."),
    "accent": ("{It} {has} {value} accents.", "Details come in {value}.", "{It} {is} set off with {value}.",
               "The accents on {this} {noun} are {value}.", "{Value} details finish {this} {noun}."),
    "trait": ("{It} {is} {value}.", "{This} {noun} {is} {value}.", "The {noun} {is} {value}.",
              "Note that {this} {noun} {is} {value}.", "{Brand}'s {noun} {is} {value}."),
    "pack": ("{It} come{s} as {value}.", "You get {value}.", "{It} {is} sold as {value}.",
             "The {noun} come{s} as {value}.", "{Brand} sells {this} {noun} as {value}."),
    "attribute": ("{It} {has} {value}.", "{This} {noun} feature{s} {value}.", "Expect {value}.",
                  "{It} offer{s} {value}.", "You also get {value}.", "The {noun} come{s} with {value}.",
                  "{Brand} gives {this} {noun} {value}."),
}
_CUT = re.compile(r"\s+(?:with|w|for)\s+.*$|\s*[,+].*$", re.I)  # "Box with lid", "Table+2 chairs", "Rug, low pile"
_SINGULAR_S = ("ss", "us")  # "dress", "asparagus": an s that is no plural


@dataclass(frozen=True)
class Noun:
    """What the product is called in a sentence ("tshirts", "wall shelf") and the grammar that goes with it."""

    word: str
    plural: bool

    def words(self) -> dict[str, str]:
        """The template placeholders that agree with the noun."""
        forms = {"noun": self.word, "it": "they", "is": "are", "has": "have", "s": "", "this": "these",
                 "them": "them", "its": "their"} if self.plural else \
            {"noun": self.word, "it": "it", "is": "is", "has": "has", "s": "s", "this": "this", "them": "it",
             "its": "its"}
        return {**forms, **{k.capitalize(): v.capitalize() for k, v in forms.items() if k in ("it", "this", "its")}}


def noun(facts: CopyFacts) -> Noun:
    """The product's noun from its category's most specific level: "Tshirts" are tshirts (plural, as Myntra names
    them), "Box with lid" a box, "Sour-Cream" sour cream; a kit ("Quilt cover and 2 pillowcases") is a set."""
    kind = _CUT.sub("", category_kind(facts)).strip()
    if family(facts) == "food":
        kind = kind.replace("-", " ")
    words = kind.split()
    if not words or words[0][0].isdigit() or " and " in f" {kind} ":
        return Noun("set", False)
    cut = next((i for i, w in enumerate(words) if w[0].isdigit()), len(words))  # "Chest of 5 drawers": a chest
    words = words[:cut]
    while len(words) > 1 and words[-1] in ("of", "a", "the"):
        words.pop()
    last = words[-1].lower()
    return Noun(" ".join(words), last.endswith("s") and not last.endswith(_SINGULAR_S))


def _rotation(options: tuple[str, ...], key: str) -> tuple[str, ...]:
    """`options` starting from the one chosen by the product and topic, so a catalog's fact sentences don't all read
    alike even without a phrase book."""
    start = int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)
    return options[start:] + options[:start]


Wear = Callable[[str], float]  # how worn a sentence's phrases are across the catalog (PhraseBook.wear)


def sentence(point: Point, facts: CopyFacts, wear: Wear | None = None) -> str:
    """One plain sentence saying `point`, from its verified value only, that the merchandiser checks pass: the
    write-up meets them too, and "Expect nickel-plated." (a fragment) would be dropped there, fact and all. With
    `wear`, the least worn of the topic's templates: Myntra's products share few facts (cotton, regular fit,
    casual), and one template a product still left a third of the fact sentences' 4-grams shared with other pages
    (issue 17, Self-BLEU)."""
    if point.topic == "note":
        return point.value
    if point.topic == "identity":
        brand = facts.brand if facts.brand and facts.brand.lower() not in facts.title.lower() else ""
        options = tuple(t for t in TEMPLATES["identity" if brand else "identity_nobrand"]
                        if "a {kind}" not in t or not noun(facts).plural)  # not "a tshirts"
        lines = [t.format(title=point.value, kind=category_kind(facts), brand=brand or facts.brand or "")
                 for t in _rotation(options, facts.id)]
    else:
        options = tuple(t for t in TEMPLATES[point.topic] if facts.brand or "{Brand}" not in t)
        words = noun(facts).words()
        lines = [re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ",  # "an abstract look"
                        t.format(value=point.value, Value=point.value[:1].upper() + point.value[1:],
                                 Brand=facts.brand or "", **words))
                 for t in _rotation(options, f"{facts.id}:{point.topic}:{point.value}")]  # points of one topic vary
    lines = [line for line in lines if not problems(line, facts)] or lines
    return lines[0] if wear is None else min(lines, key=wear)  # ties keep the product's own pick


def covered(point: Point, text: str) -> bool:
    """Whether `text` already says `point`: most of its value's words are in it."""
    wanted = [w for w in re.findall(r"\w+", point.value.lower()) if len(w) > 2 or w.isdigit()]
    have = set(re.findall(r"\w+", text.lower()))
    return bool(wanted) and sum(w in have for w in wanted) >= max(1, round(0.6 * len(wanted)))


FEW_POINTS = 4  # a plan this short is said whole: with so few facts, each one counts


def fill(text: str, facts: CopyFacts, points: list[Point], min_words: int,
         wear: Wear | None = None) -> tuple[str, list[Point]]:
    """`text` brought up to `min_words` with one sentence per point it leaves out (the product's identity first,
    the rest after); returns the text and the points added. Stops at the floor or when the points run out; a plan
    of FEW_POINTS or fewer is said whole whatever the length. `wear` picks each sentence's template."""
    added: list[Point] = []
    for point in points:
        if len(text.split()) >= min_words and len(points) > FEW_POINTS:
            break
        if covered(point, text):
            continue
        line = sentence(point, facts, wear)
        text = f"{line} {text}".strip() if point.topic == "identity" else f"{text} {line}".strip()
        added.append(point)
    return text, added


def fills_up(text: str, facts: CopyFacts, points: list[Point], min_words: int, wear: Wear | None = None) -> bool:
    """Whether `fill` brings `text` up to `min_words`: the test a sentence must pass before it is dropped for
    reading like every other page (PhraseBook.drop_stock)."""
    return len(fill(text, facts, points, min_words, wear)[0].split()) >= min_words
