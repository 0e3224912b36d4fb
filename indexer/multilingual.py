"""The multilingual vectors of the stored products (issue #15): one compact passage per product (its title and key
facts, not the description: e5 passages cost ~30 ms each here, and a description adds little to matching a
short query), encoded by the multilingual text model and stored in `embeddings` under that model's name, kind
`multilingual`.

Every publish (`indexer.publish.publish_from_store`: `shoplens index`, `publish-copy`, `adapt`) first brings them
up to date, so a home indexed before they existed gets them on its next run. It is incremental like the other
kinds: a product is encoded again only when the hash of its passage changes, and each batch commits on its own,
so a killed run continues where it stopped.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from sqlalchemy import select
from tqdm import tqdm

from indexer.catalog import sha256_text
from indexer.config import MULTILINGUAL_KIND
from indexer.model.multilingual import MultilingualEncoder
from indexer.product import ProductSummary
from indexer.store import Embedding, Product, Store, pack_vector, unpack_vector, upsert

log = logging.getLogger(__name__)

BATCH = 64


def product_passage(product: object) -> str:
    """The text a product's multilingual vector is made from: its title, then its brand, type (category leaf),
    colour and gender where the title does not already say them ("Oatly Oat Milk. Oat-Milk")."""
    summary = ProductSummary.from_record(product)
    title = summary.title or ""
    words = set(title.lower().split())
    facts = []
    for value in (summary.brand, summary.category_leaf, summary.colour, summary.gender):
        if value and not set(value.lower().split()) <= words and value not in facts:
            facts.append(value)
    return ". ".join(p for p in (title, " ".join(facts)) if p)


def embed_products(store: Store, encoder: MultilingualEncoder, *, progress: bool = False,
                   threads: int | None = None) -> int:
    """Store the multilingual vector of every active product whose vector is missing or was made from another
    passage, on `threads` of the engine (default: every core, as indexing owns the machine); returns how many were
    encoded."""
    threads = threads or os.cpu_count() or 1
    with store.session() as s:
        known = dict(s.execute(select(Embedding.product_id, Embedding.source_hash).where(
            Embedding.model == encoder.name, Embedding.kind == MULTILINGUAL_KIND)).all())
        todo = []
        for product in s.scalars(select(Product).where(Product.status == "active").order_by(Product.key)):
            passage = product_passage(product)
            digest = sha256_text(passage)
            if known.get(product.id) != digest:
                todo.append((product.id, passage, digest))
    if todo:
        log.info("encoding %d product texts with %s", len(todo), encoder.name)
    with tqdm(total=len(todo), unit="product", desc="multilingual", disable=not progress) as bar:
        for start in range(0, len(todo), BATCH):
            chunk = todo[start:start + BATCH]
            vecs = encoder.encode_passages([passage for _, passage, _ in chunk], threads=threads)
            with store.session() as s:
                upsert(s, Embedding, [{"product_id": pid, "model": encoder.name, "kind": MULTILINGUAL_KIND,
                                       "source_hash": digest, **pack_vector(vec)}
                                      for (pid, _, digest), vec in zip(chunk, vecs)])
            bar.update(len(chunk))
    return len(todo)


def multilingual_matrix(store: Store, encoder: MultilingualEncoder, keys: np.ndarray) -> np.ndarray | None:
    """The multilingual vectors of `keys` (product keys) in that order, or None when one of them has none (its
    passage could not be stored: the version is then published without the kind, and says so in the log)."""
    with store.session() as s:
        by_key = {key: unpack_vector(blob, dtype) for key, blob, dtype in s.execute(
            select(Product.key, Embedding.vector, Embedding.dtype).join(Embedding, Embedding.product_id == Product.id)
            .where(Embedding.model == encoder.name, Embedding.kind == MULTILINGUAL_KIND))}
    missing = [int(k) for k in keys if int(k) not in by_key]
    if missing:
        log.warning("%d products have no multilingual vector under %s: publishing without them",
                    len(missing), encoder.name)
        return None
    return np.stack([by_key[int(k)] for k in keys]).reshape(-1, encoder.dim)
