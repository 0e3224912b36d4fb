"""Embed the stored products with another model, without the catalog file: what `shoplens adapt` (and its
`--reset`) publish from. Images are read again from the references the products were indexed with; the text is
rebuilt from the stored fields, exactly as `shoplens index` builds it (checked against the stored text hash).

Products that already have all three vectors under the model are skipped, so a rerun after a kill continues
where it stopped (each batch commits on its own).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from PIL import Image
from sqlalchemy import func, select
from tqdm import tqdm

from indexer.catalog import CatalogRow
from indexer.config import VECTOR_KINDS
from indexer.errors import BadImage
from indexer.images import ImageResolver, decode_image
from indexer.ingest import fused_source
from indexer.model.encoder import Encoder
from indexer.store import Embedding, Product, Store, pack_vector, upsert
from indexer.vectors import fuse_vectors

log = logging.getLogger(__name__)

BATCH = 32


def stored_row(product: Product) -> CatalogRow:
    """The catalog row a stored product was indexed from: its text is rebuilt exactly as `shoplens index` built it."""
    return CatalogRow.from_record(product, row_number=0, image=product.image_ref)


def stored_image(resolver: ImageResolver, product: Product, max_pixels: int) -> Image.Image:
    """A stored product's image, read again from the reference it was indexed with (BadImage when it can't be)."""
    return decode_image(resolver.read(product.image_ref or "")[0], max_pixels=max_pixels,
                        what=f"image {product.image_ref}")[0]


def _missing(store: Store, model: str) -> list[str]:
    with store.session() as s:
        complete = select(Embedding.product_id).where(Embedding.model == model).group_by(Embedding.product_id) \
            .having(func.count() == len(VECTOR_KINDS))
        return list(s.scalars(select(Product.id).where(Product.status == "active", Product.id.not_in(complete))
                              .order_by(Product.id)))


def reembed(store: Store, encoder: Encoder, *, max_pixels: int, max_bytes: int, workers: int = 2,
            progress: bool = True) -> int:
    """Store image, text and fused vectors under `encoder.name` for every active product that lacks them; returns
    how many products were embedded. A product whose image can no longer be read keeps no vectors under this
    model (logged), so the published version leaves it out, as `shoplens index` does for a rejected row."""
    todo = _missing(store, encoder.name)
    resolver = ImageResolver([], max_bytes=max_bytes)

    def load(product: Product):
        try:
            return encoder.preprocess(stored_image(resolver, product, max_pixels))
        except BadImage as exc:
            log.warning("product %s: %s; it has no vectors under %s", product.id, exc, encoder.name)
            return None

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(todo), unit="product", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(todo), BATCH):
            with store.session() as s:
                products = list(s.scalars(select(Product).where(Product.id.in_(todo[start:start + BATCH]))))
                tensors = list(pool.map(load, products))
                good = [(p, t) for p, t in zip(products, tensors) if t is not None]
                if good:
                    done += _store_vectors(s, encoder, good)
            bar.update(len(products))
    return done


def _store_vectors(session, encoder: Encoder, good: list) -> int:
    import torch

    products = [p for p, _ in good]
    image = encoder.encode_image_tensors(torch.stack([t for _, t in good]))
    rows = [stored_row(p) for p in products]
    text = encoder.encode_texts([r.text() for r in rows])
    fused = fuse_vectors(image, text)
    embeddings = []
    for i, (p, row) in enumerate(zip(products, rows)):
        if row.text_hash() != p.text_hash:
            log.warning("product %s: its stored text hash differs from its rebuilt text", p.id)
        for kind, vec, source in (("image", image[i], p.image_hash), ("text", text[i], p.text_hash),
                                  ("fused", fused[i], fused_source(p.image_hash, p.text_hash))):
            embeddings.append({"product_id": p.id, "model": encoder.name, "kind": kind, "source_hash": source,
                               **pack_vector(vec)})
    upsert(session, Embedding, embeddings)
    return len(products)
