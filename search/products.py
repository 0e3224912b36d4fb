"""An in-memory table of the active products' facts that search filters, facets and renders on.

Loaded once per index version from the store (about 1 s for 44k products); filters become numpy masks over
per-field category codes, so a filter costs microseconds per distinct value instead of a SQL query per request.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
from sqlalchemy import select

from indexer.product import ProductSummary
from indexer.store import Product, Store
from search.filters import TEXT_FIELDS, Filters, category_matches

log = logging.getLogger(__name__)

PRICE_EDGES = (0, 500, 1000, 2000, 3000, 5000, 10000)
FACET_SIZE = 12


@dataclass(frozen=True, kw_only=True)
class ProductCard(ProductSummary):
    """What a result card shows and filters look at: the product's summary, its key (the FAISS id of its vectors)
    and what near-duplicate folding and the card's image need."""

    key: int
    image_hash: str | None = None  # sha256 of the image bytes
    has_image: bool = False

    @cached_property
    def title_key(self) -> str:
        """The title up to case and spacing (near-duplicate grouping)."""
        return " ".join(self.title.lower().split())


class _Codes:
    """Category codes for one text field: the distinct values and each product's code (-1 for none)."""

    def __init__(self, values: Sequence[str | None]) -> None:
        self.distinct: list[str] = sorted({v for v in values if v})
        index = {v: i for i, v in enumerate(self.distinct)}
        self.codes = np.array([index.get(v, -1) if v else -1 for v in values], dtype=np.int32)

    def mask(self, wanted: Iterable[str], *, category: bool = False) -> np.ndarray:
        wanted = list(wanted)
        if category:
            hits = [i for i, v in enumerate(self.distinct) if any(category_matches(v, w) for w in wanted)]
        else:
            lowered = {w.lower() for w in wanted}
            hits = [i for i, v in enumerate(self.distinct) if v.lower() in lowered]
        return np.isin(self.codes, np.array(hits, dtype=np.int32))


class ProductTable:
    """Facts of every active product, by key and by id, with filter masks and facet counts."""

    def __init__(self, products: Sequence[ProductCard]) -> None:
        self.products = list(products)
        self.by_key = {p.key: p for p in self.products}
        self.by_id = {p.id: p for p in self.products}
        self.keys = np.array([p.key for p in self.products], dtype=np.int64)
        self._row = {p.key: i for i, p in enumerate(self.products)}
        self.prices = np.array([np.nan if p.price is None else p.price for p in self.products], dtype=np.float64)
        self._codes = {f: _Codes([getattr(p, f) for p in self.products]) for f in TEXT_FIELDS}
        self._facet_codes = {"brand": self._codes["brand"], "gender": self._codes["gender"],
                             "colour": self._codes["colour"],
                             "category": _Codes([p.category_leaf for p in self.products])}

    def __len__(self) -> int:
        return len(self.products)

    @classmethod
    def load(cls, store: Store) -> "ProductTable":
        """Read the active products' facts from the store."""
        names = [f.name for f in fields(ProductCard) if hasattr(Product, f.name)]  # all but has_image
        columns = [getattr(Product, name) for name in names]
        with store.session() as session:
            rows = session.execute(select(*columns, Product.image_ref).where(Product.status == "active")).all()
        products = [ProductCard(**dict(zip(names, r)), has_image=bool(r.image_ref)) for r in rows]
        log.info("loaded facts of %d active products", len(products))
        return cls(products)

    def mask(self, filters: Filters) -> np.ndarray:
        """A boolean mask over `self.keys` of the products that pass `filters`."""
        mask = np.ones(len(self.products), dtype=bool)
        for field in TEXT_FIELDS:
            wanted = getattr(filters, field)
            if wanted:
                mask &= self._codes[field].mask(wanted, category=field == "category")
        if filters.price_min is not None or filters.price_max is not None:
            with np.errstate(invalid="ignore"):
                mask &= ~np.isnan(self.prices)
                if filters.price_min is not None:
                    mask &= self.prices >= filters.price_min
                if filters.price_max is not None:
                    mask &= self.prices <= filters.price_max
        return mask

    def allowed_keys(self, filters: Filters) -> np.ndarray | None:
        """Keys of the products passing `filters`, or None when there are no filters (everything passes)."""
        if filters.is_empty():
            return None
        return self.keys[self.mask(filters)]

    def facets(self, keys: Iterable[int]) -> dict:
        """Counts per brand, category (deepest level), gender, colour and price band over `keys` (numpy counts
        over per-field codes: a facet pass over a few hundred hits costs well under a millisecond)."""
        rows = np.fromiter((self._row[k] for k in keys if k in self._row), dtype=np.int64)
        out: dict = {}
        for field, codes in self._facet_codes.items():
            present = codes.codes[rows]
            counts = np.bincount(present[present >= 0], minlength=len(codes.distinct))
            order = sorted(np.flatnonzero(counts), key=lambda i: (-counts[i], codes.distinct[i]))[:FACET_SIZE]
            out[field] = [{"value": codes.distinct[i], "count": int(counts[i])} for i in order]
        prices = self.prices[rows]
        prices = prices[~np.isnan(prices)]
        band_of = np.clip(np.searchsorted(PRICE_EDGES, prices, side="right") - 1, 0, None)
        bands = np.bincount(band_of, minlength=len(PRICE_EDGES))
        out["price"] = [{"min": lo, "max": hi, "count": int(bands[i])}
                        for i, (lo, hi) in enumerate(zip(PRICE_EDGES, (*PRICE_EDGES[1:], None))) if bands[i]]
        return out
