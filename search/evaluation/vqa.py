"""`shoplens eval vqa`: visual question answering accuracy, measured the way a shopper would meet it.

Questions are built from a catalog's own attributes ("what colour is it?" → its colour) over products the model
was not trained on (the training record beside the model, search.evaluation.heldout), and answered with
`image_only` (search.ask.answer: the facts hidden, so the answer comes from the photo and its printed text).
An answer counts when its value is the catalog's value; an abstention ("not stated") counts as wrong. Each
question type is reported with the majority-class baseline (always answering the catalog's commonest value).
As in search, a visual read hears the photo's nearest catalog products (search.ask.reads): here the other
evaluated products and `reference` more of the catalog (its training products first), never the product itself.
"""
from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from indexer.images import ImageResolver, decode_image
from indexer.product import ProductSummary
from search.ask.answer import answer_product, fold, stated_brand
from search.ask.reads import NEIGHBOURS, Neighbour, Vocabulary, topic_value

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

log = logging.getLogger(__name__)

QUESTIONS = {"colour": "what colour is it?", "type": "what is it?", "gender": "who is it for?",
             "pattern": "what pattern is it?", "sleeve": "what sleeve length does it have?",
             "usage": "what occasion is it for?", "brand": "what brand is it?"}
DEFAULT_TOPICS = ("colour", "type", "gender", "pattern", "sleeve", "usage")


@dataclass(frozen=True)
class Item:
    """One evaluated product: its catalog row and its image."""

    row: dict[str, str]
    image: Image.Image


def product_of(row: dict[str, str]) -> dict:
    """A catalog row as `search.ask.reads.topic_value` reads a product (every column an attribute)."""
    leaf = ProductSummary(id=row["id"], title=row.get("title", ""), category=row.get("category")).category_leaf
    brand = row.get("brand") or stated_brand(row.get("information", ""))
    return {"colour": row.get("colour"), "gender": row.get("gender"), "type": leaf, "brand": brand,
            "attributes": row}


def truth(row: dict[str, str], topic: str) -> str | None:
    """The catalog's answer to a topic's question for one row (the brand: stated, or the manufacturer line)."""
    product = product_of(row)
    return product["brand"] if topic == "brand" else topic_value(product, topic)


def pick_items(rows: Sequence[dict[str, str]], exclude: frozenset[str], n: int, seed: int,
               resolver: ImageResolver, max_pixels: int) -> list[Item]:
    """Up to n rows not in `exclude` (for questions: the training products) whose image loads, drawn
    reproducibly by `seed`."""
    held = [r for r in rows if r["id"] not in exclude and r.get("image")]
    random.Random(seed).shuffle(held)
    items = []
    for row in held:
        if len(items) >= n:
            break
        try:
            data, _ = resolver.read(row["image"])
            image, _ = decode_image(data, max_pixels=max_pixels, max_bytes=resolver.max_bytes, what=row["image"])
        except Exception as exc:  # a missing or broken image leaves the product out, as indexing would
            log.warning("product %s: image left out (%s)", row["id"], exc)
            continue
        items.append(Item(row, image))
    return items


def pick_reference(rows: Sequence[dict[str, str]], training: frozenset[str], items: Sequence[Item], n: int,
                   seed: int, resolver: ImageResolver, max_pixels: int) -> list[Item]:
    """Up to n more catalog products for the neighbour pool, training products first, none of `items`."""
    if n <= 0:
        return []
    asked = frozenset(it.row["id"] for it in items)
    trained_first = sorted(rows, key=lambda r: r["id"] not in training)
    return pick_items(trained_first[: max(n * 2, n + len(asked))], asked, n, seed + 1, resolver, max_pixels)


@dataclass(frozen=True)
class Pool:
    """Catalog products whose photos' facts vote in a visual read: ids and their image vectors."""

    ids: list[str]
    vectors: np.ndarray

    @classmethod
    def of(cls, encoder: Encoder, items: Sequence[Item], vectors: np.ndarray, reference: Sequence[Item]) -> "Pool":
        """The evaluated items (already encoded) and the reference products (encoded here)."""
        return cls([it.row["id"] for it in (*items, *reference)],
                   np.concatenate([vectors, encode_images(encoder, [it.image for it in reference])]))

    def neighbours(self, vocabulary: Vocabulary, vector: np.ndarray, own_id: str) -> list[Neighbour]:
        """The products nearest `vector`, with their facts, the product `own_id` left out."""
        sims = self.vectors @ vector
        order = np.argsort(-sims)[:NEIGHBOURS + 1]
        return vocabulary.neighbours(((self.ids[i], float(sims[i])) for i in order), exclude=[own_id])


def catalog_vocabulary(rows: Sequence[dict[str, str]]) -> Vocabulary:
    """The whole catalog's vocabulary, keyed by product id."""
    return Vocabulary.from_products((r["id"], product_of(r)) for r in rows)


def evaluate_vqa(rows: Sequence[dict[str, str]], items: Sequence[Item], vectors: np.ndarray, pool: Pool,
                 encoder: Encoder, topics: Sequence[str],
                 printed: Callable[[Image.Image], list[tuple[str, float]]] | None = None) -> dict:
    """Accuracy per question type over `items` (their image `vectors`; image-only answers), with the majority
    baseline, coverage (the share answered at all) and accuracy among the answered. The vocabulary is the whole
    catalog's; neighbours come from `pool`."""
    vocabulary = catalog_vocabulary(rows)
    majority = {t: _commonest(truth(r, t) for r in rows) for t in topics}
    tallies: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "correct": 0, "answered": 0, "majority": 0})
    examples: dict[str, list[dict]] = defaultdict(list)
    for item, vector in zip(items, vectors):
        lines = printed(item.image) if printed is not None and "brand" in topics else []
        neighbours = pool.neighbours(vocabulary, vector, item.row["id"])
        for topic in topics:
            expected = truth(item.row, topic)
            if not expected:
                continue
            answer = answer_product(QUESTIONS[topic], vocabulary, lambda: encoder, vector, None, lines, neighbours)
            ok = _matches(topic, answer.value, expected)
            t = tallies[topic]
            t["n"] += 1
            t["correct"] += ok
            t["answered"] += answer.source != "none"
            t["majority"] += _matches(topic, majority[topic], expected)
            if len(examples[topic]) < 5:
                examples[topic].append({"id": item.row["id"], "truth": expected, "answer": answer.answer,
                                        "source": answer.source, "correct": ok})
    out = {}
    for topic, t in tallies.items():
        acc, base = t["correct"] / t["n"], t["majority"] / t["n"]
        out[topic] = {"n": t["n"], "accuracy": round(acc, 4), "majority_baseline": round(base, 4),
                      "majority_value": majority[topic], "x_majority": round(acc / base, 2) if base else None,
                      "coverage": round(t["answered"] / t["n"], 4),
                      "accuracy_when_answered": round(t["correct"] / t["answered"], 4) if t["answered"] else None,
                      "candidates": len(vocabulary.values.get(topic, vocabulary.brands)), "examples": examples[topic]}
    return out


def vqa_table(results: dict) -> str:
    """The per-question-type figures as a Markdown table."""
    lines = ["| question | n | accuracy | majority baseline | × majority | coverage | accuracy when answered |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for topic, r in results.items():
        lines.append(f"| {topic} | {r['n']} | {r['accuracy']:.3f} | {r['majority_baseline']:.3f} "
                     f"({r['majority_value']}) | {r['x_majority'] if r['x_majority'] is not None else '-'} | "
                     f"{r['coverage']:.2f} | {r['accuracy_when_answered'] if r['accuracy_when_answered'] is not None else '-'} |")
    return "\n".join(lines)


def _commonest(values: Iterable[str | None]) -> str | None:
    """The most common stated value (the majority class; None when no row states one)."""
    counts = Counter(v for v in values if v)
    return counts.most_common(1)[0][0] if counts else None


def encode_images(encoder: Encoder, images: list[Image.Image]) -> np.ndarray:
    """Unit image vectors of `images`, in the encoder's batch size."""
    step = max(encoder.batches.image, 1)
    parts = [encoder.encode_images(images[i:i + step]) for i in range(0, len(images), step)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)


def _matches(topic: str, value: str | None, expected: str) -> bool:
    """Whether an answer's value is the catalog's; a printed brand counts when its first word was read."""
    if not value:
        return False
    if topic == "brand":
        first = fold(expected).split()[:1]
        return bool(first) and f" {first[0]} " in f" {fold(value)} "
    return fold(value) == fold(expected)
