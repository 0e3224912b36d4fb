"""A shopper's question, checked and parsed into the one product attribute it asks about (a "topic").

Parsing is keyword rules over the catalog's own vocabulary, not a model: it is instant, it explains itself, and a
question it cannot place is answered "can't answer" instead of being guessed at. A yes/no question that names a
value ("is it red?", "is it a shirt?") carries that value, so the answer can say yes or no.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Mapping, Sequence

from indexer.errors import BadInput

# Topics a photo can show: answered from a visual read when the facts are hidden or silent.
VISUAL_TOPICS = ("type", "colour", "gender", "pattern", "sleeve", "usage")
# Topics only the catalog (or the printed label) can answer: never guessed from the look of a photo.
FACT_TOPICS = ("material", "size", "ingredients", "price")
PRINTED_TOPICS = ("label", "brand")
TOPICS = (*VISUAL_TOPICS, *FACT_TOPICS, *PRINTED_TOPICS)

# Phrases that name a topic, first match wins (so "what does the label say" is `label`, not `brand`).
_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("label", ("what is printed", "printed on", "label", "say", "says", "written", "writing", "text", "read", "reads",
               "wording", "inscription")),
    ("brand", ("brand", "who makes", "made by", "maker", "manufacturer", "company", "logo")),
    ("material", ("material", "made of", "made from", "fabric", "cotton", "leather", "polyester", "wool", "silk",
                  "linen", "denim", "wood", "wooden", "metal", "plastic", "glass", "steel")),
    ("ingredients", ("ingredient", "ingredients", "contain", "contains", "organic", "ecological", "lactose",
                     "gluten", "vegan", "sugar", "allergen", "allergens", "dairy", "fat")),
    ("sleeve", ("sleeve", "sleeves", "sleeveless")),
    ("size", ("size", "sizes", "how big", "how large", "dimension", "dimensions", "measurements", "how long",
              "how tall", "how wide", "length", "width", "height")),
    ("price", ("price", "cost", "costs", "how much", "expensive", "cheap")),
    ("pattern", ("pattern", "patterned", "striped", "stripes", "checked", "checks", "checkered", "solid", "plain",
                 "printed", "floral", "print")),
    ("usage", ("occasion", "usage", "casual", "formal", "sports", "sport", "party", "ethnic", "wear it to",
               "for work", "for the office")),
    ("gender", ("gender", "who is it for", "who's it for", "for whom", "men", "women", "man", "woman", "mens",
                "womens", "boys", "girls", "boy", "girl", "unisex", "male", "female", "kids")),
    ("colour", ("colour", "color", "colours", "colors", "shade", "hue")),
    ("type", ("what is it", "what is this", "what's this", "what's it", "what kind", "what type", "type",
              "category", "what product", "what item", "what are these", "what is that")),
)
_YES_NO = re.compile(r"^(is|are|does|do|has|have|can|was|it s|its|will)\b")


@dataclass(frozen=True)
class Question:
    """What was asked: the topic (None: nothing we can place), the value a yes/no question names, the words."""

    text: str
    topic: str | None
    asked: str | None = None      # "is it red?" → "Red" (a vocabulary value), or the claim word ("organic")
    readable: bool = True         # False: no word in a script we read (the answer says so, instead of noise)


def check_question(text: str | None, limit: int) -> str:
    """The question, stripped; BadInput (400) for an empty, over-long or non-text one, naming the limit."""
    rule = f"ask a question of 1 to {limit} characters"
    if text is None or not text.strip():
        raise BadInput(f"the question is empty: {rule}")
    if len(text) > limit:
        raise BadInput(f"the question is {len(text)} characters long; the limit is {limit}")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\t\n\r" for c in text):
        raise BadInput(f"the question holds control or binary characters: {rule} of text")
    if not any(c.isalpha() for c in text):
        raise BadInput(f"the question holds no words: {rule} of text")
    return " ".join(text.split())


def _fold(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("-", " ")))


def _latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    latin = [c for c in letters if "LATIN" in unicodedata.name(c, "")]
    return len(latin) / max(len(letters), 1)


def parse_question(text: str, vocabulary: Mapping[str, Sequence[str]]) -> Question:
    """The topic `text` asks about and, for a yes/no question, the value it names. `vocabulary` is the catalog's
    values per visual topic; a named value places the topic when no cue word does ("is it a kurta?")."""
    if _latin_share(text) < 0.5:
        return Question(text, None, readable=False)
    folded = f" {_fold(text)} "
    cue = next(((t, c) for t, cues in _CUES for c in cues if f" {_fold(c)} " in folded), None)
    named = _named_value(folded, vocabulary)
    topic = cue[0] if cue else named[0] if named else None
    asked = None
    if _YES_NO.match(folded.strip()):
        if named is not None and named[0] == topic:
            asked = named[1]
        elif cue is not None and topic in FACT_TOPICS and cue[1] not in _GENERIC:
            asked = cue[1]
    return Question(text, topic, asked)


_GENERIC = {"material", "made of", "made from", "ingredient", "ingredients", "contain", "contains", "size", "sizes",
            "price", "cost", "costs", "fabric", "length", "width", "height", "dimension", "dimensions",
            "how big", "how large", "how much", "how long", "how tall", "how wide", "measurements"}


def _named_value(folded: str, vocabulary: Mapping[str, Sequence[str]]) -> tuple[str, str] | None:
    """The longest vocabulary value named in the folded question, with its topic ("Sports Shoes" over "Shoes")."""
    best: tuple[int, str, str] | None = None
    for topic, values in vocabulary.items():
        for value in values:
            key = _fold(value)
            variants = {key, key.rstrip("s"), key + "s"} if len(key) > 3 else {key}
            if key and any(f" {v} " in folded for v in variants) and (best is None or len(key) > best[0]):
                best = (len(key), topic, value)
    return None if best is None else (best[1], best[2])
