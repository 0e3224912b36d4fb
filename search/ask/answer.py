"""Answers to a shopper's question about a product, or about a photo of anything, each naming its source.

In order: the catalog's facts (unless hidden: `image_only`, what VQA accuracy measures), a zero-shot visual read of
the photo (`search.ask.reads`, for what a photo can show), the text read on the product's image (labels, brands,
"organic" on a carton). When none supports an answer it says the catalog doesn't say: a material, a size or an
ingredient is never guessed from the look of a photo. Answers are templated (no language model): instant and
exactly as grounded as their source.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from indexer.product import ProductSummary
from search.ask.questions import FACT_TOPICS, VISUAL_TOPICS, Question, parse_question
from search.ask.reads import Neighbour, Read, Vocabulary, product_dict, topic_value
from search.products import ProductCard

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

SOURCES = ("facts", "image", "printed_text", "none")
NOUNS = {"type": "type", "colour": "colour", "gender": "gender", "pattern": "pattern",
         "sleeve": "sleeve length", "usage": "occasion", "material": "material", "size": "size",
         "ingredients": "ingredients", "price": "price", "brand": "brand", "label": "printed text"}
# Attribute keys that state a fact-only topic (catalog names seen in Myntra, IKEA and the grocery catalog).
FACT_KEYS = {"material": ("Fabric", "Material", "material", "fabric", "materials_care_desc", "Fabric 2"),
             "size": ("size", "Size", "dimensions", "Dimensions"),
             "ingredients": ("ingredients", "Ingredients")}
# Claim words and the words a catalog or a Swedish carton states them with ("is it organic?" meets EKOLOGISK).
CLAIMS = {"organic": ("organic", "ecological", "ekologisk", "eko", "krav"),
          "ecological": ("organic", "ecological", "ekologisk", "eko", "krav"),
          "lactose": ("lactose", "laktos", "laktosfri"), "vegan": ("vegan",), "gluten": ("gluten", "glutenfri")}
_INGREDIENTS = re.compile(r"ingredien(?:ts|ser)\s*:\s*(.+?)(?:\s+nutrition values|\s+url:|$)", re.I)
_MANUFACTURER = re.compile(r"manufacturer(?: and volume)?\s*:\s*([^,]+)", re.I)


@dataclass(frozen=True)
class Answer:
    """A short answer, where it comes from, and how sure it is (1 for a catalog fact, the read's confidence)."""

    answer: str
    source: str
    confidence: float
    topic: str | None = None
    value: str | None = None
    closest: list[dict] = field(default_factory=list)  # a photo's closest products (id, title, score)

    def to_dict(self) -> dict:
        out = {"answer": self.answer, "source": self.source, "confidence": round(self.confidence, 4),
               "topic": self.topic, "value": self.value}
        if self.closest:
            out["closest"] = self.closest
        return out


def answer_product(question: str, vocabulary: Vocabulary, encoder: Callable[[], Encoder], vector: np.ndarray | None,
                   facts: dict | None, printed: Sequence[tuple[str, float]],
                   neighbours: Sequence[Neighbour] = ()) -> Answer:
    """Answer `question` about one product: from `facts` (the product page's dict; None hides them), its image
    `vector` (None: no photo), the `printed` lines read on its image and its nearest other catalog products'
    facts (`neighbours`, which vote in a visual read). `encoder` is called only for a visual read, so a fact
    answer needs no model."""
    q = parse_question(question, vocabulary.values)
    if q.topic is None:
        return _cannot(q)
    if facts is not None:
        found = fact_answer(q, facts)
        if found is not None:
            return found
    if q.topic in VISUAL_TOPICS and vector is not None:
        read = vocabulary.read_all(encoder(), vector, ("type", q.topic), neighbours)[q.topic]
        if read.sure:
            return visual_answer(q, read)
    if q.topic in ("label", "brand") or q.topic in FACT_TOPICS and q.asked:
        found = printed_answer(q, printed, vocabulary)
        if found is not None:
            return found
    return not_stated(q, unsure=q.topic in VISUAL_TOPICS and vector is not None)


def answer_photo(question: str, vocabulary: Vocabulary, encoder: Encoder, vector: np.ndarray,
                 closest: Sequence[tuple[ProductCard, float]],
                 printed: Callable[[], Sequence[tuple[str, float]]], neighbours: Sequence[Neighbour] = ()) -> Answer:
    """Answer `question` about a photo of anything: zero-shot reads of it, the words read on it (`printed` reads
    them, called only for a question about words), and the closest catalog products ("what is this?")."""
    near = [{"id": card.id, "title": card.title, "score": round(score, 4)} for card, score in closest]
    q = parse_question(question, vocabulary.values)
    if q.topic is None:
        found = _cannot(q)
    elif q.topic in VISUAL_TOPICS:
        read = vocabulary.read_all(encoder, vector, ("type", q.topic), neighbours)[q.topic]
        found = visual_answer(q, read) if read.sure else not_stated(q, unsure=True, photo=True)
    else:
        found = (q.topic in ("label", "brand") or q.asked) and printed_answer(q, printed(), vocabulary)
        found = found or not_stated(q, photo=True)
    if near:
        titles = "; ".join(n["title"] for n in near)
        found = Answer(f"{found.answer} Closest in the catalog: {titles}.", found.source, found.confidence,
                       found.topic, found.value, near)
    return found


def fact_answer(q: Question, facts: dict) -> Answer | None:
    """The answer the catalog's facts give, or None when they say nothing about the topic."""
    text = " ".join(str(v) for v in (facts.get("title"), facts.get("description"),
                                     *(facts.get("attributes") or {}).values()) if v)
    if q.topic in VISUAL_TOPICS:
        summary = ProductSummary.from_record(SimpleNamespace(**facts))
        value = topic_value(product_dict(summary, facts.get("attributes")), q.topic)
    elif q.topic == "price":
        price = facts.get("price")
        value = None if price is None else f"{price:,.0f} {facts.get('currency') or ''}".strip()
    elif q.topic == "brand":
        value = facts.get("brand") or stated_brand(text)
    elif q.topic == "ingredients" and q.asked:
        return _claim(q, text, "facts", "the catalog")
    elif q.topic == "ingredients":
        value = _fact_key(facts, q.topic) or _first(_INGREDIENTS, text)
    elif q.topic in FACT_KEYS:
        value = _fact_key(facts, q.topic)
    else:
        return None
    if not value:
        return None
    return _stated(q, value, "facts", 1.0, f"The catalog gives its {NOUNS[q.topic]} as {value}.")


def visual_answer(q: Question, read: Read) -> Answer:
    """An answer from a confident visual read, yes or no when the question named a value."""
    sentence = f"From the photo, its {NOUNS[q.topic]} looks like {read.value} ({read.confidence:.0%} sure)."
    return _stated(q, read.value or "", "image", read.confidence, sentence)


def printed_answer(q: Question, printed: Sequence[tuple[str, float]], vocabulary: Vocabulary) -> Answer | None:
    """An answer from the lines read on the image: what the label says, a brand, a claim such as "organic"."""
    if not printed:
        return None
    text = " · ".join(line for line, _ in printed)
    confidence = float(np.mean([c for _, c in printed]))
    if q.topic == "label":
        return Answer(f"The label reads: {text}.", "printed_text", confidence, q.topic, text)
    if q.asked:
        return _claim(q, text, "printed_text", "the label", confidence)
    if q.topic == "brand":
        folded = f" {fold(text)} "
        brand = next((b for b in sorted(vocabulary.brands, key=len, reverse=True) if f" {fold(b)} " in folded), None)
        if brand:
            return Answer(f"The label reads {brand}.", "printed_text", confidence, q.topic, brand)
        return Answer(f"The label reads: {text}.", "printed_text", confidence, q.topic, text)
    return None


def not_stated(q: Question, *, unsure: bool = False, photo: bool = False) -> Answer:
    """The answer when nothing supports one: said plainly, never guessed."""
    noun = NOUNS.get(q.topic or "", "that")
    if q.asked and q.topic in FACT_TOPICS:
        where = "The photo can't show" if photo else "The catalog doesn't say"
        return Answer(f"{where} whether it is {q.asked}.", "none", 0.0, q.topic)
    if photo:
        reason = "isn't clear enough to tell" if unsure else "can't show it"
        return Answer(f"The photo {reason} its {noun}.", "none", 0.0, q.topic)
    tail = " and the photo isn't clear enough to tell" if unsure else ""
    return Answer(f"The catalog doesn't say its {noun}{tail}.", "none", 0.0, q.topic)


def _cannot(q: Question) -> Answer:
    if not q.readable:
        return Answer("I can't read that question: please ask in English, e.g. 'what colour is it?'.", "none", 0.0)
    return Answer("I can't answer that from this product's facts, photo or label: ask about its type, colour, "
                  "material, size, brand or what the label says.", "none", 0.0)


def _stated(q: Question, value: str, source: str, confidence: float, sentence: str) -> Answer:
    if q.asked:
        yes = fold(q.asked) in fold(value) or fold(value) in fold(q.asked)
        sentence = f"{'Yes' if yes else 'No'}: {sentence[0].lower()}{sentence[1:]}"
    return Answer(sentence, source, confidence, q.topic, value)


def _claim(q: Question, text: str, source: str, where: str, confidence: float = 1.0) -> Answer | None:
    """Yes when `text` states the claim (or a word it is printed as); None otherwise: absence is not a no."""
    words = CLAIMS.get(fold(q.asked or ""), (fold(q.asked or ""),))
    folded = f" {fold(text)} "
    hit = next((w for w in words if f" {w}" in folded), None)
    if hit is None:
        return None
    return Answer(f"Yes: {where} says {hit}.", source, confidence, q.topic, hit)


def _fact_key(facts: dict, topic: str) -> str | None:
    attributes = facts.get("attributes") or {}
    return next((str(attributes[k]) for k in FACT_KEYS[topic]
                 if str(attributes.get(k) or "").strip().lower() not in ("", "na", "none")), None)


def stated_brand(text: str) -> str | None:
    """The manufacturer a catalog's free text names ("Manufacturer and volume: ARLA KO, 1l"), if any."""
    return _first(_MANUFACTURER, text or "")


def fold(text: str) -> str:
    """Lower-case words only: how answers, claims and catalog values are compared."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _first(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1).strip() if match else None
