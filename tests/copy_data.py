"""Real Myntra products in a temp store for the copywriter tests (facts only: no vectors needed)."""
from __future__ import annotations

import csv
from pathlib import Path

from indexer.catalog import CatalogRow, parse_mapping, read_catalog
from indexer.store import Product, Store, open_store, upgrade
from tests.indexer_data import MYNTRA, MYNTRA_MAP

MYNTRA_CSV = MYNTRA / "products.csv"


def myntra_products(ids: list[str] | None = None, n: int = 20, *, hr_only: bool = True,
                    stride: int = 1) -> list[CatalogRow]:
    """Myntra rows through the indexer's own catalog reader and the README's --map options; without `ids`,
    every `stride`-th product that has a description (and a sharp image, with `hr_only`)."""
    wanted = set(ids or [])
    rows = []
    seen = 0
    for row in read_catalog(MYNTRA_CSV, parse_mapping(MYNTRA_MAP)):
        if not isinstance(row, CatalogRow):
            continue
        if wanted and row.id not in wanted:
            continue
        if not wanted and (hr_only and not (row.image or "").startswith("images_hr/") or not row.description):
            continue
        seen += 1
        if not wanted and (seen - 1) % stride:
            continue
        rows.append(row)
        if (wanted and len(rows) == len(wanted)) or (not wanted and len(rows) == n):
            break
    return rows


def image_ref(row: CatalogRow) -> str | None:
    if not row.image:
        return None
    if row.image.startswith("thumbs_60x80.zip#"):
        return f"{MYNTRA / 'thumbs_60x80.zip'}#{row.image.split('#', 1)[1]}"
    return str(MYNTRA / row.image)


def make_store(db_path: Path, rows: list[CatalogRow]) -> tuple[str, Store]:
    """A migrated SQLite store holding `rows` as active products."""
    url = f"sqlite:///{db_path}"
    upgrade(url)
    store = open_store(url)
    with store.session() as s:
        for key, row in enumerate(rows, start=1):
            s.add(Product(id=row.id, key=key, title=row.title, description=row.description, brand=row.brand,
                          category=row.category, colour=row.colour, gender=row.gender, price=row.price,
                          currency="INR", image_ref=image_ref(row), attributes=row.attributes, status="active"))
    return url, store


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return path


def source_descriptions(ids: list[str]) -> dict[str, str]:
    with open(MYNTRA_CSV, newline="", encoding="utf-8") as fh:
        return {r["id"]: r["description"] for r in csv.DictReader(fh) if r["id"] in set(ids)}
