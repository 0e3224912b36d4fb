"""Query builders: evaluation sets from a catalog, so any merchant can evaluate without hand-labelling.

- title queries: a held-out product's title; relevant = every product with an identical title
  (Myntra has 13k rows sharing a title with another row).
- attribute queries ("black casual shoes for men"): relevant = every product matching all the attributes.
- photo queries: a labelled photo list in the grocery `photo_queries.csv` format; relevant = the labelled product
  (optionally products of the same coarse class as partly relevant).

Every builder is deterministic for a given seed, and returns queries plus qrels for `trec.write_*`.
"""
from __future__ import annotations

import csv
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from indexer.errors import BadInput
from search.evaluation.trec import Qrels, Query

log = logging.getLogger(__name__)
MISSING = {"", "na", "n/a", "none", "null", "nan"}
MYNTRA_ATTRIBUTES = ("base_colour", "usage", "article_type", "gender")
MYNTRA_TEMPLATE = "{base_colour} {usage} {article_type} for {gender}"


@dataclass(frozen=True)
class EvalSet:
    """Queries and their judgements, written together so an evaluation can be rerun exactly."""

    queries: list[Query]
    qrels: Qrels


def read_catalog_rows(path: Path, map_items: Sequence[str] = ()) -> list[dict[str, str]]:
    """Valid rows of a catalog, read exactly as `shoplens index` reads it (same `--map`, same ids), as flat dicts.

    Each dict holds every source column, the attributes the indexer derives (JSON columns unpacked) and the
    engine fields (`id`, `title`, `colour`, ...), so `--attributes` may name a column or a field.
    """
    from indexer.catalog import FIELDS, CatalogRow, parse_mapping, read_catalog, read_csv_records, read_jsonl_records

    path = Path(path)
    mapping = parse_mapping(map_items)
    valid: dict[str, CatalogRow] = {}
    rejected = 0
    for row in read_catalog(path, mapping):
        if isinstance(row, CatalogRow):
            valid[row.id] = row
        else:
            rejected += 1
    if rejected:
        log.warning("%d catalog rows of %s were rejected (as `shoplens index` would); they are left out", rejected, path)
    records = read_jsonl_records(path) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else read_csv_records(path)
    rows: list[dict[str, str]] = []
    for _number, record, _error in records:
        row = valid.pop(mapping["id"].render(record), None) if record is not None else None
        if row is None:  # rejected, or a later duplicate of an id
            continue
        flat = {str(k): str(v) for k, v in record.items() if v is not None and not isinstance(v, (dict, list))}
        flat.update({k: str(v) for k, v in row.attributes.items()})
        flat.update({name: str(getattr(row, name)) for name in FIELDS if getattr(row, name) is not None})
        rows.append(flat)
    if not rows:
        raise BadInput(f"catalog {path} has no valid rows.")
    return rows


def normalise_title(title: str) -> str:
    """Titles count as identical up to case and whitespace."""
    return " ".join(title.casefold().split())


def _present(value: str | None) -> bool:
    return value is not None and value.strip().casefold() not in MISSING


def title_queries(rows: Sequence[Mapping[str, str]], n: int, seed: int,
                  exclude: Iterable[str] = ()) -> EvalSet:
    """`n` title queries from products outside `exclude` whose title no excluded product shares."""
    excluded = set(exclude)
    by_title: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if _present(r.get("title")):
            by_title[normalise_title(r["title"])].append(r["id"])
    seen_titles = {normalise_title(r["title"]) for r in rows if r["id"] in excluded and _present(r.get("title"))}
    first_of_title: dict[str, Mapping[str, str]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        key = normalise_title(r.get("title") or "")
        if r["id"] not in excluded and key and key not in seen_titles and key not in first_of_title:
            first_of_title[key] = r
    candidates = sorted(first_of_title.values(), key=lambda r: r["id"])
    picked = random.Random(seed).sample(candidates, min(n, len(candidates)))
    queries, qrels = [], {}
    for i, r in enumerate(sorted(picked, key=lambda r: r["id"]), start=1):
        qid = f"title-{i:05d}"
        queries.append(Query(qid, text=" ".join(r["title"].split()), kind="title", source=(r["id"],)))
        qrels[qid] = {pid: 1 for pid in by_title[normalise_title(r["title"])]}
    return EvalSet(queries, qrels)


def _phrase(template: str, values: Mapping[str, str]) -> str:
    """Fill the template in lower case and drop a word that repeats the next ("casual casual shoes")."""
    words = template.format(**{k: v.strip().lower() for k, v in values.items()}).split()
    return " ".join(w for i, w in enumerate(words) if i + 1 >= len(words) or w != words[i + 1])


def attribute_queries(rows: Sequence[Mapping[str, str]], n: int, seed: int,
                      attributes: Sequence[str] = MYNTRA_ATTRIBUTES, template: str = MYNTRA_TEMPLATE,
                      min_relevant: int = 3, max_relevant: int = 500) -> EvalSet:
    """`n` queries over combinations of `attributes` seen in the catalog with a useful number of matches."""
    if rows:
        present = set().union(*rows)
        missing = [a for a in attributes if a not in present]
        if missing:
            raise BadInput(f"catalog has no column(s) {', '.join(missing)} for attribute queries.",
                           hint="Name existing columns with --attributes and --template.")
    try:
        template.format(**{a: "x" for a in attributes})
    except (KeyError, IndexError) as exc:
        raise BadInput(f"--template {template!r} names {exc}, which is not in --attributes.") from exc
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for r in rows:
        values = tuple(r.get(a) or "" for a in attributes)
        if all(_present(v) for v in values):
            groups[tuple(v.strip().casefold() for v in values)].append(r["id"])
    combos = sorted(key for key, ids in groups.items() if min_relevant <= len(ids) <= max_relevant)
    picked = sorted(random.Random(seed).sample(combos, min(n, len(combos))))
    queries, qrels = [], {}
    for i, key in enumerate(picked, start=1):
        qid = f"attr-{i:05d}"
        queries.append(Query(qid, text=_phrase(template, dict(zip(attributes, key))), kind="attribute",
                             filters={}))
        qrels[qid] = {pid: 1 for pid in groups[key]}
    return EvalSet(queries, qrels)


def photo_queries(photo_list: Path, rows: Sequence[Mapping[str, str]] | None = None, n: int | None = None,
                  seed: int = 0, partial_field: str | None = None) -> EvalSet:
    """Queries from a labelled photo list (`query_id, query_image_path, relevant_product_id[, coarse_class_id]`).

    With `partial_field` (e.g. `coarse_class_id`), products sharing that field with the labelled one are partly
    relevant (1) and the labelled one is exact (2); otherwise the labelled product alone is relevant (1).
    """
    photo_list = Path(photo_list)
    if not photo_list.is_file():
        raise BadInput(f"photo list {photo_list} does not exist.")
    with photo_list.open(encoding="utf-8", newline="") as fh:
        photos = list(csv.DictReader(fh))
    need = {"query_id", "query_image_path", "relevant_product_id"}
    if not photos or not need <= set(photos[0]):
        raise BadInput(f"photo list {photo_list} needs columns {', '.join(sorted(need))}.")
    siblings: dict[str, list[str]] = defaultdict(list)
    field_of: dict[str, str] = {}
    if partial_field:
        if not rows or not any(partial_field in r for r in rows):
            raise BadInput(f"--partial {partial_field}: the catalog has no such column.")
        for r in rows:
            field_of[r["id"]] = r[partial_field]
            siblings[r[partial_field]].append(r["id"])
    known = {r["id"] for r in rows} if rows else None
    chosen = sorted(photos, key=lambda p: p["query_id"])
    if n is not None and n < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, n), key=lambda p: p["query_id"])
    queries, qrels = [], {}
    for p in chosen:
        image = (photo_list.parent / p["query_image_path"]).resolve()
        if not image.is_file():
            raise BadInput(f"{photo_list}: photo {p['query_image_path']} of {p['query_id']} not found.")
        target = p["relevant_product_id"].strip()
        if known is not None and target not in known:
            raise BadInput(f"{photo_list}: {p['query_id']} names product {target!r}, which is not in the catalog.")
        qid = re.sub(r"\s+", "_", p["query_id"].strip())
        queries.append(Query(qid, image=image, kind="photo"))
        judged = {pid: 1 for pid in siblings.get(field_of.get(target, ""), [])} if partial_field else {}
        judged[target] = 2 if partial_field else 1
        qrels[qid] = judged
    return EvalSet(queries, qrels)
