"""Style examples: the catalog's own best human-written descriptions of similar products, for the prompt.

The nearest neighbours come from our search engine (`SearchEngine.similar`: the product's image and text
vectors) when the home has a published index, else from the products closest in category (same deepest level,
same first level, shared category words).
"Best" is a description a merchandiser would keep: 6-80 words, no markup, no robotic pattern
(web/copywriter/polish.py). An example is cut to its first sentences.

The model may copy an example's facts (another product's name, colour, size, "saves space on the worktop").
`leaked_claims` finds them: words of an example's facts (its title, brand, colour, attribute values, and the rare
words of its description) that this product's facts don't have, written in the copy. They are unsupported claims
of kind `leak`, removed like any other.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from sqlalchemy import select

from indexer.errors import NoIndex, ShopLensError
from indexer.reading.words import words
from indexer.store import Product, Store
from web.copywriter.facts import CopyFacts, facts_from_product
from web.copywriter.grounding import Claim, FactIndex
from web.copywriter.polish import problems

log = logging.getLogger(__name__)

Neighbours = Callable[[str, int], list[str]]
_MARKUP = re.compile(r"<[^>]+>|&\w+;|https?://")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
COMMON_SHARE = 0.03  # a description word in at least this share of the catalog's descriptions is style, not fact


@dataclass(frozen=True)
class StyleExample:
    """A neighbour's description as shown in the prompt, with the neighbour's facts (for the leak check)."""

    product_id: str
    text: str
    facts: CopyFacts


def example_text(facts: CopyFacts, max_words: int = 50) -> str | None:
    """The description's first sentences (up to `max_words`), or None when it is not one worth imitating."""
    text = " ".join((facts.description or "").split())
    if not text or _MARKUP.search(text) or not 6 <= len(text.split()) <= 80 or problems(text, facts):
        return None
    kept: list[str] = []
    for sentence in _SENTENCE.split(text):
        if kept and len(" ".join(kept + [sentence]).split()) > max_words:
            break
        kept.append(sentence)
    return " ".join(kept) if kept[-1].endswith((".", "!")) else None


class StyleLibrary:
    """Style examples for products of one store; `neighbours(product_id, k)` ranks similar products."""

    def __init__(self, store: Store, neighbours: Neighbours | None = None, *, candidates: int = 12) -> None:
        self.store = store
        self.neighbours = neighbours
        self.candidates = candidates

    @cached_property
    def _catalog(self) -> dict[str, CopyFacts]:
        with self.store.session() as s:
            return {p.id: facts_from_product(p) for p in s.scalars(select(Product).where(Product.status == "active"))}

    @cached_property
    def common_words(self) -> frozenset[str]:
        """Words in at least COMMON_SHARE of the catalog's descriptions: the catalog's style vocabulary."""
        descriptions = [f.description for f in self._catalog.values() if f.description]
        counts = Counter(w for d in descriptions for w in set(words(d)))
        floor = max(2, COMMON_SHARE * len(descriptions))
        return frozenset(w for w, c in counts.items() if c >= floor)

    def _similar(self, facts: CopyFacts) -> list[str]:
        if self.neighbours is not None:
            try:
                return [pid for pid in self.neighbours(facts.id, self.candidates) if pid != facts.id]
            except NoIndex as exc:  # no published index in this home: by category from now on
                log.info("style examples by category: %s", exc)
                self.neighbours = None
            except ShopLensError as exc:  # e.g. a product the published version doesn't hold yet
                log.info("style examples for %s by category: %s", facts.id, exc)
        def closeness(other: CopyFacts) -> tuple[bool, bool, int]:
            levels = [p.strip().lower() for p in (other.category or "").split(">")]
            return (other.category_leaf == facts.category_leaf, levels[:1] == mine[:1],
                    len(set(words(other.category or "")) & set(words(facts.category or ""))))

        mine = [p.strip().lower() for p in (facts.category or "").split(">")]
        ranked = sorted((f for f in self._catalog.values() if f.id != facts.id), key=closeness, reverse=True)
        return [f.id for f in ranked[:self.candidates * 4]]

    def examples(self, facts: CopyFacts, k: int = 2) -> list[StyleExample]:
        """Up to `k` good descriptions of the products most like `facts`, nearest first."""
        found = []
        for pid in self._similar(facts):
            other = self._catalog.get(pid)
            text = example_text(other) if other is not None else None
            if text and all(text != e.text for e in found):
                found.append(StyleExample(pid, text, other))
                if len(found) == k:
                    break
        return found

    def fact_words(self, example: StyleExample) -> set[str]:
        """The words that state the example's facts: the rare words of its fields and of its description."""
        f = example.facts
        fields = " ".join(filter(None, [f.title, f.brand, f.colour, *f.attributes.values()]))
        return (set(words(fields)) | set(words(example.text))) - self.common_words


def leaked_claims(text: str, index: FactIndex, examples: list[StyleExample], library: StyleLibrary) -> list[Claim]:
    """An example's fact words in `text` that this product's facts don't have: unsupported `leak` claims."""
    if not examples:
        return []
    leaked: dict[str, str] = {}
    for example in examples:
        for word in library.fact_words(example):
            if not {word, word.rstrip("s"), word + "s"} & index.catalog_terms:
                leaked.setdefault(word, example.product_id)
    claims = []
    for m in re.finditer(r"[^\W\d_][\w'-]*", text):
        term = next(iter(words(m.group(0))), None)
        if term is not None and term in leaked:
            claims.append(Claim("leak", m.group(0), term, m.start(), m.end(), False,
                                f"{m.group(0)!r} is a fact of style example {leaked[term]}, not of this product"))
    return claims
