"""Shared test data: the real datasets' paths and the `--map` options README.md documents for them, real catalog
subsets (as CSV rows, or as indexer rows in a store that has the products' facts only) and crafted files."""
from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

from click.testing import CliRunner, Result

from indexer.catalog import CatalogRow, parse_mapping, read_catalog
from indexer.config import Settings
from indexer.images import ImageResolver
from indexer.ingest import add_facts
from indexer.store import Store, open_store

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MYNTRA = DATASETS / "myntra_fashion"
GROCERY = DATASETS / "grocery_store"
# The options README.md documents for the two catalogs.
MYNTRA_MAP = ["image=image_hr,thumbs_60x80.zip#{thumb_60x80}", "title=title,{brand} {variant_name}",
              "category=master_category>sub_category>article_type", "colour=base_colour",
              "price=discounted_price_inr,price_inr"]
GROCERY_MAP = ["id=product_id", "image=iconic_image_path", "category=top_category>coarse_class"]
N_MYNTRA = 300  # Myntra products in the real test index (conftest.real_home)


def myntra_rows(n: int, *, with_hr: int | None = None) -> tuple[list[dict], list[str]]:
    """The first n Myntra rows (half with an `images_hr` image, half thumbnail-only unless `with_hr` says),
    with image references made absolute so the CSV can live anywhere."""
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        hr, thumbs = [], []
        want_hr = n // 2 if with_hr is None else with_hr
        for row in reader:
            if row["image_hr"] and len(hr) < want_hr:
                hr.append(row)
            elif not row["image_hr"] and len(thumbs) < n - want_hr:
                thumbs.append(row)
            if len(hr) >= want_hr and len(thumbs) >= n - want_hr:
                break
    rows = hr + thumbs
    for row in rows:
        if row["image_hr"]:
            row["image_hr"] = str(MYNTRA / row["image_hr"])
        else:
            row["thumb_60x80"] = row["thumb_60x80"]
    return rows, fields


def myntra_spread(n: int = N_MYNTRA) -> tuple[list[dict], list[str]]:
    """n Myntra rows that have a full-size photo, taken at an even stride so every common type is present."""
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        with_photo = [row for row in reader if row["image_hr"]]
    rows = with_photo[:: len(with_photo) // n][:n]
    for row in rows:
        row["image_hr"] = str(MYNTRA / row["image_hr"])
    return rows, fields


def myntra_products(ids: list[str] | None = None, n: int = 20, *, hr_only: bool = True,
                    stride: int = 1) -> list[CatalogRow]:
    """Myntra rows through the indexer's own catalog reader and the README's --map options; without `ids`,
    every `stride`-th product that has a description (and a sharp image, with `hr_only`)."""
    wanted = set(ids or [])
    rows = []
    seen = 0
    for row in read_catalog(MYNTRA / "products.csv", parse_mapping(MYNTRA_MAP)):
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


def facts_store(db_path: Path, rows: list[CatalogRow]) -> tuple[str, Store]:
    """A migrated SQLite store holding the Myntra `rows` as active products with their facts only (no vectors)."""
    url = f"sqlite:///{db_path}"
    store = open_store(url, migrate=True)
    add_facts(store, rows, ImageResolver([MYNTRA], max_bytes=Settings.max_image_bytes))
    return url, store


def grocery_photo_queries() -> list[dict]:
    """The grocery catalog's in-store photo queries: query_image_path (under GROCERY), relevant_product_id, ..."""
    with open(GROCERY / "photo_queries.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def shoplens(home: Path, *args: str, ok: bool = True) -> Result:
    """`shoplens --home HOME ARGS...` in-process; with `ok`, it must succeed."""
    from web.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    if ok:
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return result


def index_catalog(home: Path, catalog: Path, mapping: list[str], *extra: str) -> None:
    """`shoplens index CATALOG --map ...` into `home`, which must succeed."""
    shoplens(home, "index", str(catalog), "--no-progress", *extra, *[a for m in mapping for a in ("--map", m)])


def myntra_map_args() -> list[str]:
    """CLI arguments for a Myntra subset CSV outside the dataset folder."""
    return ["--images-root", str(MYNTRA), *[a for m in MYNTRA_MAP for a in ("--map", m)]]
