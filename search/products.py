"""The active products' facts that search filters, facets and renders on.

Columns written with each index version (`indexer.facts`) and memory-mapped, so a worker holds no Python object
per product; filters become numpy masks over per-field codes (microseconds per distinct value), facets numpy
counts over the hits' rows, and a result card is made from the columns when a page shows it.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.facts import FACTS, FactColumns, read_facts
from indexer.product import ProductSummary
from indexer.store import Store
from search.filters import TEXT_FIELDS, Filters, category_matches

log = logging.getLogger(__name__)

PRICE_EDGES = (0, 500, 1000, 2000, 3000, 5000, 10000)
FACET_SIZE = 12


@dataclass(frozen=True, kw_only=True)
class ProductCard(ProductSummary):
    """What a result card shows and filters look at: the product's summary, its key (the FAISS id of its vectors)
    and what the card's image needs."""

    key: int
    image_hash: str | None = None  # sha256 of the image bytes
    has_image: bool = False


class _Codes:
    """Category codes for one text field: the distinct values and each product's code (-1 for none)."""

    def __init__(self, distinct: Sequence[str], codes: np.ndarray) -> None:
        self.distinct, self.codes = list(distinct), codes

    def mask(self, wanted: Iterable[str], *, category: bool = False) -> np.ndarray:
        """Work over the distinct values (a few thousand at most), then one numpy pass over the codes."""
        wanted = list(wanted)
        if category:
            hits = [i for i, v in enumerate(self.distinct) if any(category_matches(v, w) for w in wanted)]
        else:
            lowered = {w.lower() for w in wanted}
            hits = [i for i, v in enumerate(self.distinct) if v.lower() in lowered]
        return np.isin(self.codes, np.array(hits, dtype=np.int32))


class _Cards(Mapping):
    """Cards by key or by id, made from the columns on lookup (no object per product is kept)."""

    def __init__(self, table: "ProductTable", row_of: Callable[[object], int | None]) -> None:
        self._table, self._row_of = table, row_of

    def __getitem__(self, k: object) -> ProductCard:
        row = self._row_of(k)
        if row is None:
            raise KeyError(k)
        return self._table.card(row)

    def __contains__(self, k: object) -> bool:
        return self._row_of(k) is not None

    def __iter__(self) -> Iterator:
        raise TypeError("iterate ProductTable.products instead")

    def __len__(self) -> int:
        return len(self._table)


class ProductTable:
    """Facts of every active product (`indexer.facts.FactColumns`, memory-mapped when the version has them), with
    filter masks, facet counts and cards by key or id."""

    def __init__(self, columns: FactColumns) -> None:
        self.columns = columns
        self.keys = columns.keys
        self.prices = columns.price
        self._codes = {f: _Codes(columns.distinct[f], columns.codes[f]) for f in (*TEXT_FIELDS, "category_leaf")}
        self._facet_codes = {"brand": self._codes["brand"], "gender": self._codes["gender"],
                             "colour": self._codes["colour"], "category": self._codes["category_leaf"]}
        self.by_key: Mapping[int, ProductCard] = _Cards(self, lambda k: columns.row_of_key(int(k)))
        self.by_id: Mapping[str, ProductCard] = _Cards(self, lambda i: columns.row_of_id(str(i)))

    def __len__(self) -> int:
        return len(self.columns)

    @classmethod
    def from_cards(cls, products: Iterable[ProductCard]) -> "ProductTable":
        return cls(FactColumns.from_records(products))

    @classmethod
    def load(cls, store: Store, version_path: Path | None = None) -> "ProductTable":
        """The version's facts memory-mapped; read from the store for a version published before they existed."""
        if version_path is not None and (version_path / FACTS).is_dir():
            return cls(FactColumns.open(version_path / FACTS))
        with store.session() as session:
            columns = read_facts(session)
        log.info("loaded facts of %d active products from the store", len(columns))
        return cls(columns)

    def card(self, row: int) -> ProductCard:
        c = self.columns
        price = float(c.price[row])
        return ProductCard(key=int(c.keys[row]), id=c.string("id", row), title=c.string("title", row) or "",
                           brand=c.coded("brand", row), category=c.coded("category", row),
                           colour=c.coded("colour", row), gender=c.coded("gender", row),
                           price=None if np.isnan(price) else price, currency=c.coded("currency", row),
                           image_hash=c.string("image_hash", row), has_image=bool(c.has_image[row]))

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Each key's row in the columns, -1 for a key not among the active products (one vectorised search)."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self):
            return np.full(len(keys), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.keys, keys), len(self) - 1)
        return np.where(self.keys[rows] == keys, rows, -1)

    @cached_property
    def duplicate_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row, a code of its title up to case and spacing and one of its image bytes (-1: no image): what
        near-duplicate folding compares (search.dedupe), made once per version rather than per hit and query."""
        titles: dict[str, int] = {}
        images: dict[str, int] = {}
        title_codes = np.empty(len(self), dtype=np.int32)
        image_codes = np.empty(len(self), dtype=np.int32)
        for row in range(len(self)):
            title = " ".join((self.columns.string("title", row) or "").lower().split())
            title_codes[row] = titles.setdefault(title, len(titles))
            digest = self.columns.string("image_hash", row)
            image_codes[row] = images.setdefault(digest, len(images)) if digest else -1
        return title_codes, image_codes

    @property
    def products(self) -> Iterator[ProductCard]:
        """Every product's card, made one at a time (for per-version builds, never per query)."""
        return (self.card(row) for row in range(len(self)))

    def codes(self, field: str) -> tuple[list[str], np.ndarray]:
        """(distinct values, each product's code) of a coded field: brand, category, category_leaf, colour,
        gender."""
        return self._codes[field].distinct, self._codes[field].codes

    def title_matches(self, pattern: re.Pattern[bytes]) -> np.ndarray:
        """Keys of the products whose lower-cased title `pattern` matches: one regex pass over the title blob."""
        starts = [m.start() for m in pattern.finditer(self._lower_titles)]
        rows = np.searchsorted(self.columns.offsets["title"], np.array(starts, dtype=np.int64), side="right") - 1
        return self.keys[np.unique(rows)]

    @cached_property
    def _lower_titles(self) -> bytes:
        return bytes(self.columns.blobs["title"]).lower()
    def mask(self, filters: Filters) -> np.ndarray:
        """A boolean mask over `self.keys` of the products that pass `filters`."""
        mask = np.ones(len(self), dtype=bool)
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
        rows = self.rows_of(np.fromiter(keys, dtype=np.int64))
        rows = rows[rows >= 0]
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
