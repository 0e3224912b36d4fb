"""The product reader: what a product page shows and where a product's image is, read from the store per request
(a page wants the description, attributes and approved copy that the in-memory product table leaves out)."""
from __future__ import annotations

from sqlalchemy import select

from indexer.errors import NotFound
from indexer.product import STORED_FIELDS
from indexer.store import CopyVersion, Product, ProductImage, Store


def product_page(store: Store, product_id: str) -> dict:
    """Everything the product page shows: the catalog facts, image facts and the approved copy, if any."""
    with store.session() as session:
        product = session.get(Product, product_id)
        if product is None or product.status != "active":
            raise NotFound(f"no product with id {product_id!r}")
        image = session.get(ProductImage, product_id)
        approved = session.execute(
            select(CopyVersion).where(CopyVersion.product_id == product_id, CopyVersion.status == "approved")
            .order_by(CopyVersion.version.desc()).limit(1)).scalar_one_or_none()
        return {
            "id": product.id, **{name: getattr(product, name) for name in STORED_FIELDS},
            "attributes": product.attributes or {},
            "image": ({"format": image.format, "width": image.width, "height": image.height}
                      if image is not None else None),
            "has_image": bool(product.image_ref),
            "copy": ({"version": approved.version, "text": approved.text, "bullets": approved.bullets or [],
                      "seo_title": approved.seo_title} if approved is not None else None),
        }


def image_ref(store: Store, product_id: str) -> str:
    """Where the product's image bytes are (a path or ARCHIVE.zip#MEMBER recorded at ingestion)."""
    with store.session() as session:
        ref = session.execute(select(Product.image_ref).where(
            Product.id == product_id, Product.status == "active")).scalar_one_or_none()
    if not ref:
        raise NotFound(f"product {product_id!r} has no image")
    return ref
