"""Catalog rows as training pairs, and the deterministic split that keeps evaluation products out of training.

Training reads the catalog itself (CSV or JSON Lines) rather than the database so that `shoplens train-model`
works before anything is indexed and so that the split depends only on the file and the seed.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import BadInput

# Columns that describe a product in words: appended to the title by `text_of` (Myntra names; absent ones skip).
ATTRIBUTE_COLUMNS = ("gender", "article_type", "base_colour", "usage", "season", "brand")


@dataclass(frozen=True)
class Pair:
    """One product: its id, its texts, and where its image is (path, or (zip path, member))."""

    id: str
    title: str
    attributes: str
    image: tuple[Path, str | None]
    holdout_eligible: bool


def _rows(path: Path) -> list[dict]:
    if path.suffix.lower() in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def parse_image_column(spec: str) -> tuple[str, str | None]:
    """`COLUMN` or `COLUMN:ARCHIVE.zip` (the column names a member of that archive)."""
    column, _, archive = spec.partition(":")
    return column, archive or None


def read_pairs(catalog: Path, image_columns: list[str], *, images_root: Path | None = None,
               holdout_column: str | None = None) -> list[Pair]:
    """Products with a title and an image; the first non-empty image column wins.

    `holdout_column`: only products with a non-empty value there may be drawn into the held-out split
    (Myntra: `image_hr`, so that evaluation uses the sharp images).
    """
    catalog = Path(catalog).resolve()  # resolved: the feature cache is keyed by image paths
    root = Path(images_root).resolve() if images_root else catalog.parent
    rows = _rows(catalog)
    if not rows:
        raise BadInput(f"{catalog} has no rows.")
    columns = [parse_image_column(c) for c in image_columns]
    missing = [c for c, _ in columns if c not in rows[0]] + [c for c in ("id", "title") if c not in rows[0]]
    if missing:
        raise BadInput(f"{catalog} has no column {missing[0]!r}.",
                       hint=f"Columns: {', '.join(rows[0])}; pass --image-col COLUMN[:ARCHIVE.zip].")
    pairs = []
    for row in rows:
        ref = next(((col, arc) for col, arc in columns if (row.get(col) or "").strip()), None)
        if ref is None or not (row.get("title") or "").strip():
            continue
        col, arc = ref
        image = (root / arc, row[col].strip()) if arc else (root / row[col].strip(), None)
        attrs = " ".join(str(row[c]) for c in ATTRIBUTE_COLUMNS if str(row.get(c) or "NA") not in ("", "NA"))
        pairs.append(Pair(str(row["id"]), row["title"].strip(), attrs, image,
                          bool((row.get(holdout_column) or "").strip()) if holdout_column else True))
    return pairs


def text_of(pair: Pair, mode: str) -> str:
    """The text a product is trained on: `title`, or `title+attributes` (title, then gender, type, colour...)."""
    return pair.title if mode == "title" else f"{pair.title}. {pair.attributes}".strip()


def split(pairs: list[Pair], *, holdout: float = 0.1, val: float = 0.05, seed: int = 0
          ) -> tuple[list[int], list[int], list[int]]:
    """Indices (train, val, test). Test: `holdout` of the eligible products, never trained on; val: `val` of the
    rest, for early stopping. Depends only on the ids and the seed."""
    rng = random.Random(seed)
    eligible = sorted((i for i, p in enumerate(pairs) if p.holdout_eligible), key=lambda i: pairs[i].id)
    rng.shuffle(eligible)
    test = set(eligible[:round(holdout * len(eligible))])
    rest = sorted((i for i in range(len(pairs)) if i not in test), key=lambda i: pairs[i].id)
    rng.shuffle(rest)
    n_val = round(val * len(rest))
    return sorted(rest[n_val:]), sorted(rest[:n_val]), sorted(test)
