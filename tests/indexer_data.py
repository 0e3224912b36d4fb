"""Shared test data for the indexer tests: real catalog subsets written to tmp_path, and the `db_url` fixture."""
from __future__ import annotations

import csv
import os
import struct
import uuid
import zlib
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MYNTRA = DATASETS / "myntra_fashion"
GROCERY = DATASETS / "grocery_store"
# The options README.md documents for the two catalogs.
MYNTRA_MAP = ["image=image_hr,thumbs_60x80.zip#{thumb_60x80}", "title=title,{brand} {variant_name}",
              "category=master_category>sub_category>article_type", "colour=base_colour",
              "price=discounted_price_inr,price_inr"]
GROCERY_MAP = ["id=product_id", "image=iconic_image_path", "category=top_category>coarse_class"]
PG_URL = os.environ.get("SHOPLENS_TEST_PG_URL")


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


def myntra_map_args() -> list[str]:
    """CLI arguments for a Myntra subset CSV outside the dataset folder."""
    return ["--images-root", str(MYNTRA), *[a for m in MYNTRA_MAP for a in ("--map", m)]]


def _postgres_database() -> str:
    """A fresh database on the test server, so each test starts empty."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"shoplens_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


_BACKENDS = [pytest.param("sqlite", id="sqlite"),
             pytest.param("postgres", id="postgres", marks=[
                 pytest.mark.postgres,
                 pytest.mark.skipif(not PG_URL, reason="set SHOPLENS_TEST_PG_URL (scripts/start-postgres.sh)")])]


@pytest.fixture(params=_BACKENDS)
def db_url(request, tmp_path) -> str:
    """A database URL for an empty database: SQLite always, PostgreSQL when SHOPLENS_TEST_PG_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shoplens.db'}"
        return
    url = _postgres_database()
    try:
        yield url
    finally:
        from indexer.store import make_engine

        make_engine(url).dispose()
        _drop_postgres_database(url)
