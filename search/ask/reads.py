"""Zero-shot visual reads: which of the catalog's own values (colours, product types, genders, patterns...) a photo
shows, read with the index's encoder by comparing the photo's vector with text prompts of every candidate value.

The candidates are the catalog's vocabulary (values at least two active products carry), so a read can only name
something the catalog itself uses. The type is read first; the other topics are read with the type in the prompt
("Blue Tshirts", "for Women Tshirts"), the way the model's training titles name them: on Myntra training products
this lifted colour from .58 to .60 and gender from .42 to .68 (single-word prompts). The prompt softmax (at
`TEMPERATURE`) is mixed half and half with a vote of the photo's nearest catalog products (their own facts,
weighted by similarity): on 400 Myntra *training* products against 3,000 others this took type from .62 to .85,
colour .55 → .70, gender .71 → .86 (weights 0, .5, .7, .85, 1 tried; .5 best). The mixture's top probability
is the read's confidence; below `MIN_CONFIDENCE` a read abstains.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from sqlalchemy import select

from indexer.store import Product, Store
from search.ask.questions import VISUAL_TOPICS
from search.products import ProductTable

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

log = logging.getLogger(__name__)

# Where each visual topic's catalog value lives: a product field, or attribute keys (Myntra's names first).
ATTRIBUTE_KEYS = {"colour": ("colour", "Colour", "color", "base_colour"), "pattern": ("Pattern", "pattern"),
                  "sleeve": ("Sleeve Length", "sleeve_length", "sleeve"), "usage": ("usage", "Usage", "Occasion"),
                  "type": ("type", "article_type"), "gender": ("gender",)}
MISSING = {"", "na", "n/a", "none", "null", "nan", "other", "others"}
MIN_SUPPORT = 2          # a value fewer products carry is not a candidate (typos, one-offs)
# Softmax temperature over cosines, and the confidence a read needs to be answered with; both set on Myntra
# *training* products of the test index (bench/vqa.py reports the held-out figures these give).
TEMPERATURE = 0.02
NEIGHBOUR_TEMPERATURE = 0.05   # a neighbour's vote: exp((cos - best cos) / this)
NEIGHBOUR_WEIGHT = 0.5         # the vote's share in the mixture (0 where no neighbours are given)
NEIGHBOURS = 20                # nearest catalog products that vote
MIN_CONFIDENCE = 0.35
_PROMPTS = {"type": "{value}", "gender": "for {value} {type}"}
_DEFAULT_PROMPT = "{value} {type}"


@dataclass(frozen=True)
class Read:
    """One visual read: the best candidate value and its softmax confidence (None value: the topic has none)."""

    topic: str
    value: str | None
    confidence: float
    runner_up: str | None = None

    @property
    def sure(self) -> bool:
        """Whether the read is confident enough to answer with."""
        return self.value is not None and self.confidence >= MIN_CONFIDENCE


# A nearby catalog product's facts (topic → value) and its cosine with the photo.
Neighbour = tuple[dict[str, str], float]


class Vocabulary:
    """The catalog's values per visual topic (with counts), and the text vectors of their prompts per encoder,
    computed on first use and kept for the index version (a few hundred short texts, once)."""

    def __init__(self, values: dict[str, Counter], by_type: dict[str, dict[str, Counter]],
                 brands: Iterable[str] = (), facts: dict[object, dict[str, str]] | None = None) -> None:
        self.counts = values
        self.facts = facts or {}  # each product's visual-topic values, by key: what a neighbour votes
        self.brands = sorted({b for b in brands if _usable(b)})  # printed brands are matched against these
        self.values = {t: _supported(c) for t, c in values.items()}
        # The values products of each type carry: a photo read as a pepper is never asked for a gender or a
        # sleeve, and a T-shirt's sleeve is one of the sleeves T-shirts have.
        self.by_type = {kind: {t: _supported(c) for t, c in topics.items()} for kind, topics in by_type.items()}
        self._prompts: dict[tuple[str, str, str, bool], np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_products(cls, products: Iterable[tuple[object, dict]]) -> "Vocabulary":
        """Counts of each topic's values over (key, product dict) pairs (fields plus an `attributes` mapping)."""
        counts: dict[str, Counter] = {t: Counter() for t in VISUAL_TOPICS}
        by_type: dict[str, dict[str, Counter]] = {}
        facts: dict[object, dict[str, str]] = {}
        brands = set()
        for key, product in products:
            brands.add(product.get("brand"))
            kind = topic_value(product, "type")
            mine = facts[key] = {}
            for topic in VISUAL_TOPICS:
                value = topic_value(product, topic)
                if value:
                    mine[topic] = value
                    counts[topic][value] += 1
                    if kind:
                        by_type.setdefault(kind, {}).setdefault(topic, Counter())[value] += 1
        return cls(counts, by_type, brands - {None}, facts)

    @classmethod
    def load(cls, store: Store, table: ProductTable) -> "Vocabulary":
        """The vocabulary of the active products (fields from `table`, attributes read once from the store)."""
        with store.session() as session:
            attributes = dict(session.execute(select(Product.id, Product.attributes)
                                              .where(Product.status == "active")).all())
        return cls.from_products((p.key, product_dict(p, attributes.get(p.id))) for p in table.products)

    def candidates(self, topic: str, type_value: str = "") -> list[str]:
        """The values a read of `topic` chooses among: those products of `type_value` carry (all the catalog's
        when no type was read)."""
        if type_value and topic != "type":
            return self.by_type.get(type_value, {}).get(topic, [])
        return self.values.get(topic, [])

    def prompts(self, encoder: Encoder, topic: str, type_value: str = "", in_prompt: bool = True) -> np.ndarray:
        """Unit text vectors of `topic`'s candidate prompts (rows in `candidates(topic, type_value)` order)."""
        key = (encoder.name, topic, type_value, in_prompt)
        with self._lock:
            found = self._prompts.get(key)
        if found is None:
            template = _PROMPTS.get(topic, _DEFAULT_PROMPT)
            texts = [" ".join(template.format(value=v, type=type_value if in_prompt else "").split())
                     for v in self.candidates(topic, type_value)]
            found = encoder.encode_texts(texts) if texts else np.zeros((0, encoder.dim), dtype=np.float32)
            with self._lock:
                self._prompts[key] = found
        return found

    def read(self, encoder: Encoder, vector: np.ndarray, topic: str, type_value: str = "", *,
             in_prompt: bool = True, neighbours: Sequence[Neighbour] = ()) -> Read:
        """The candidate value of `topic` the photo vector matches best, with its confidence; candidates are those
        of `type_value`, named in the prompts unless `in_prompt` is False (an unsure type read); `neighbours`
        (nearest catalog products, best first) vote."""
        type_value = type_value if topic != "type" else ""
        candidates = self.candidates(topic, type_value)
        if not candidates:
            return Read(topic, None, 0.0)
        if len(candidates) == 1:  # every product of this type carries it: the type read settles it
            return Read(topic, candidates[0], 1.0)
        sims = self.prompts(encoder, topic, type_value, in_prompt) @ vector
        probs = np.exp((sims - sims.max()) / TEMPERATURE)
        probs /= probs.sum()
        votes = _votes(candidates, topic, neighbours)
        if votes is not None:
            probs = NEIGHBOUR_WEIGHT * votes + (1.0 - NEIGHBOUR_WEIGHT) * probs
        order = np.argsort(-probs)
        runner = candidates[int(order[1])] if len(order) > 1 else None
        return Read(topic, candidates[int(order[0])], float(probs[order[0]]), runner)

    def read_all(self, encoder: Encoder, vector: np.ndarray, topics: Iterable[str] = VISUAL_TOPICS,
                 neighbours: Sequence[Neighbour] = ()) -> dict[str, Read]:
        """Reads of `topics` for one photo vector, the type first (the others are read with it)."""
        kind = self.read(encoder, vector, "type", neighbours=neighbours)
        return {t: kind if t == "type" else self.read(encoder, vector, t, kind.value or "", in_prompt=kind.sure,
                                                      neighbours=neighbours)
                for t in topics}

    def neighbours(self, ranking: Iterable[tuple[object, float]], exclude: Iterable[object] = ()) -> list[Neighbour]:
        """The facts of the first NEIGHBOURS products of a (key, cosine) ranking, leaving out `exclude` (the
        asked product itself: its own facts must not answer an image-only question)."""
        skip = set(exclude)
        found = [(self.facts[k], s) for k, s in ranking if k not in skip and k in self.facts]
        return found[:NEIGHBOURS]


def _votes(candidates: Sequence[str], topic: str, neighbours: Sequence[Neighbour]) -> np.ndarray | None:
    """The neighbours' similarity-weighted vote over `candidates` (None: no neighbour states one)."""
    index = {v: i for i, v in enumerate(candidates)}
    votes = np.zeros(len(candidates))
    best = max((s for _, s in neighbours), default=0.0)
    for facts, sim in neighbours:
        i = index.get(facts.get(topic, ""))
        if i is not None:
            votes[i] += np.exp((sim - best) / NEIGHBOUR_TEMPERATURE)
    return votes / votes.sum() if votes.sum() > 0 else None


def product_dict(card: object, attributes: dict | None) -> dict:
    """A product's fields and attributes as `topic_value` reads them."""
    return {"colour": getattr(card, "colour", None), "gender": getattr(card, "gender", None),
            "brand": getattr(card, "brand", None),
            "type": getattr(card, "category_leaf", None), "attributes": attributes or {}}


def topic_value(product: dict, topic: str) -> str | None:
    """What the catalog says for a visual topic: its field, else the first attribute key that names it."""
    value = product.get(topic)
    if not _usable(value):
        attributes = product.get("attributes") or {}
        if isinstance(attributes, str):
            attributes = json.loads(attributes or "{}")
        value = next((attributes[k] for k in ATTRIBUTE_KEYS.get(topic, ()) if _usable(attributes.get(k))), None)
    return str(value).strip() if _usable(value) else None


def _supported(counts: Counter) -> list[str]:
    return sorted(v for v, n in counts.items() if n >= MIN_SUPPORT)


def _usable(value: object) -> bool:
    return value is not None and str(value).strip().lower() not in MISSING
