"""The active products' facts as columns, written with each index version and memory-mapped by search.

A million products as Python objects cost gigabytes in every serving worker and seconds to load; as columns they
are a few numpy arrays that the workers share through the page cache. Fields with few distinct values (brand,
category and its deepest level, colour, gender, currency) are codes into a sorted list of values, so a filter or a
facet is numpy work over int32 codes; the per-product strings (id, title, image hash) are one UTF-8 blob each with
offsets, every value followed by a newline (so a regex over the blob never runs from one title into the next).

Layout of `<version>/facts/`: `meta.json` (`count`, the `distinct` values per coded field), `keys.npy` (int64,
ascending; a product's row is its key's position), `price.npy` (float64, NaN for none), `has_image.npy`,
`<field>.codes.npy` (int32, -1 for none), `<field>.blob.npy` (uint8) + `<field>.offsets.npy` (int64, n + 1) and
`id_order.npy` (rows in id order, for lookups by id).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.product import category_leaf
from indexer.store import Product

FACTS = "facts"  # the folder of a version
CODED_FIELDS = ("brand", "category", "category_leaf", "colour", "gender", "currency")
STRING_FIELDS = ("id", "title", "image_hash")
SEP = b"\n"


def _strings(values: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [(v or "").encode() + SEP for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _codes(values: list[str | None]) -> tuple[list[str], np.ndarray]:
    distinct = sorted({v for v in values if v})
    index = {v: i for i, v in enumerate(distinct)}
    return distinct, np.array([index.get(v, -1) if v else -1 for v in values], dtype=np.int32)


@dataclass
class FactColumns:
    """Columns over the products in key order; see the module docstring for what each holds."""

    keys: np.ndarray
    price: np.ndarray
    has_image: np.ndarray
    codes: dict[str, np.ndarray]
    distinct: dict[str, list[str]]
    blobs: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    id_order: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_records(cls, records: Iterable[object]) -> "FactColumns":
        """Columns of records with the product fields as attributes (the store's rows, or search's cards), and
        `image_ref` or `has_image`."""
        rows = sorted(records, key=lambda r: r.key)
        values = {f: [getattr(r, f) for r in rows] for f in ("brand", "category", "colour", "gender", "currency")}
        values["category_leaf"] = [category_leaf(c) for c in values["category"]]
        codes, distinct = {}, {}
        for f in CODED_FIELDS:
            distinct[f], codes[f] = _codes(values[f])
        blobs, offsets = {}, {}
        for f in STRING_FIELDS:
            blobs[f], offsets[f] = _strings([getattr(r, f) for r in rows])
        ids = [r.id for r in rows]
        has_image = [bool(r.has_image) if hasattr(r, "has_image") else bool(r.image_ref) for r in rows]
        return cls(np.array([r.key for r in rows], dtype=np.int64),
                   np.array([np.nan if r.price is None else r.price for r in rows], dtype=np.float64),
                   np.array(has_image, dtype=bool), codes, distinct, blobs, offsets,
                   np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").write_text(json.dumps({"count": len(self), "distinct": self.distinct}))
        arrays = {"keys": self.keys, "price": self.price, "has_image": self.has_image, "id_order": self.id_order,
                  **{f"{f}.codes": c for f, c in self.codes.items()}, **{f"{f}.blob": b for f, b in self.blobs.items()},
                  **{f"{f}.offsets": o for f, o in self.offsets.items()}}
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)

    @classmethod
    def open(cls, folder: Path) -> "FactColumns":
        """The columns of `folder`, memory-mapped (read-only, shared between the processes that open them)."""
        meta = json.loads((folder / "meta.json").read_text())

        def load(name: str) -> np.ndarray:  # a plain array over the map: np.memmap's indexing is slow
            return np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))

        return cls(load("keys"), load("price"), load("has_image"), {f: load(f"{f}.codes") for f in CODED_FIELDS},
                   meta["distinct"], {f: load(f"{f}.blob") for f in STRING_FIELDS},
                   {f: load(f"{f}.offsets") for f in STRING_FIELDS}, load("id_order"))

    def string(self, field: str, row: int) -> str | None:
        """One product's value of a per-product string field (None for empty)."""
        start, stop = int(self.offsets[field][row]), int(self.offsets[field][row + 1]) - len(SEP)
        return bytes(self.blobs[field][start:stop]).decode() or None

    def coded(self, field: str, row: int) -> str | None:
        code = int(self.codes[field][row])
        return self.distinct[field][code] if code >= 0 else None

    def row_of_key(self, key: int) -> int | None:
        row = int(np.searchsorted(self.keys, key))
        return row if row < len(self.keys) and int(self.keys[row]) == key else None

    def row_of_id(self, product_id: str) -> int | None:
        """Binary search over the rows in id order (log2(n) string reads, about 20 for a million)."""
        lo, hi = 0, len(self.id_order)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.string("id", int(self.id_order[mid])) < product_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.id_order) and self.string("id", int(self.id_order[lo])) == product_id:
            return int(self.id_order[lo])
        return None


def read_facts(session: Session) -> FactColumns:
    """The active products' columns, read from the store as plain rows (no ORM object per product)."""
    names = ("key", "id", "title", "image_hash", "image_ref", "price", "brand", "category", "colour", "gender",
             "currency")
    rows = session.execute(select(*(getattr(Product, n) for n in names)).where(Product.status == "active"))
    return FactColumns.from_records(rows)
