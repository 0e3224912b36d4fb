"""Held-out discipline: an evaluation must not score the model on products it was trained on.

The model's folder carries a machine-readable record of its training data next to MODEL_CARD.md. Accepted
shapes (any `*.json` in the folder, first match wins):
- `shoplens train-model`'s `training.json` (catalog, image columns, recipe with seed and split fractions): the
  split is rebuilt with `indexer.model.training.data`, so train + validation products count as trained on;
- `{"training_products": [ids...]}` (also `train_ids`, `trained_on`): every product the model saw (train + val);
- `{"heldout_products": [ids...], "catalog": PATH}` (also `test_ids`): every product of that catalog outside the
  held-out list was trained on.
`training_products.txt` (one id a line) works too. A query is "from training" when it names a training product in
its `source`, or, lacking a source, when its text is the exact title of a training product.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from indexer.model.adapted import is_adapted_folder, read_model_file
from search.evaluation.builders import normalise_title
from search.evaluation.trec import Query

log = logging.getLogger(__name__)

TRAIN_KEYS = ("training_products", "train_ids", "trained_on")
HELDOUT_KEYS = ("heldout_products", "held_out_products", "test_ids")


@dataclass(frozen=True)
class TrainingRecord:
    """What a model was trained on, as read from its folder."""

    source: Path
    products: frozenset[str]


def model_folder(spec: str) -> Path | None:
    """The folder holding a model's weights and card: registered models use indexer/model/weights/."""
    from indexer.model.registry import WEIGHTS_DIR, registered_models

    base = spec.split("@", 1)[0]
    if base in registered_models():
        return WEIGHTS_DIR
    path = Path(spec.removeprefix("local-dir:")).expanduser()
    if path.is_dir():
        return path
    _, sep, rest = spec.partition(":")
    if sep and Path(rest).expanduser().is_file():
        return Path(rest).expanduser().parent
    return None


def _ids_from_json(obj: object, path: Path) -> frozenset[str] | None:
    if not isinstance(obj, dict):
        return None
    for key in TRAIN_KEYS:
        if isinstance(obj.get(key), list):
            return frozenset(map(str, obj[key]))
    for key in HELDOUT_KEYS:
        if isinstance(obj.get(key), list) and obj.get("catalog"):
            catalog = (path.parent / str(obj["catalog"])).resolve()
            if not catalog.is_file():
                log.warning("%s names catalog %s, which is not here: cannot tell training products", path, catalog)
                return None
            from search.evaluation.builders import read_catalog_rows

            heldout = set(map(str, obj[key]))
            return frozenset(r["id"] for r in read_catalog_rows(catalog, obj.get("map") or ()) if r["id"] not in heldout)
    if isinstance(obj.get("recipe"), dict) and obj.get("catalog") and obj.get("image_columns"):
        return _ids_from_split(obj, path)
    for value in obj.values():  # a nested "data" / "training" section
        if isinstance(value, dict):
            found = _ids_from_json(value, path)
            if found is not None:
                return found
    return None


def _find_catalog(name: str, card: Path) -> Path | None:
    """The card's catalog path, as given at training time: relative to the repo root, the card, or absolute."""
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [card.parent / given, Path(__file__).resolve().parents[2] / given,
                                                      Path.cwd() / given]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _ids_from_split(card: dict, path: Path) -> frozenset[str] | None:
    """Rebuild `shoplens train-model`'s split from the card (catalog, image columns, seed, fractions): train + val."""
    from indexer.model.training.data import read_pairs, split

    catalog = _find_catalog(str(card["catalog"]), path)
    if catalog is None:
        log.warning("%s names catalog %s, which is not here: cannot tell training products", path, card["catalog"])
        return None
    recipe = card["recipe"]
    pairs = read_pairs(catalog, list(card["image_columns"]), holdout_column=card.get("holdout_column"))
    train, val, _test = split(pairs, holdout=recipe.get("holdout", 0.1), val=recipe.get("val", 0.05),
                              seed=recipe.get("seed", 0))
    limit = recipe.get("max_train")
    return frozenset(pairs[i].id for i in (*train, *val) if limit is None or i < limit)


def training_record(folder: Path | None) -> TrainingRecord | None:
    """Read what the model in `folder` was trained on, or None when the folder records nothing usable. A home's
    adapted model (indexer.model.adapted) was trained on its own list and on everything its base model was."""
    if folder is None or not folder.is_dir():
        return None
    record = _own_record(folder)
    if record is not None and is_adapted_folder(folder):
        base = training_record(model_folder(read_model_file(folder)["base"]))
        if base is not None:
            return TrainingRecord(record.source, record.products | base.products)
    return record


def _own_record(folder: Path) -> TrainingRecord | None:
    text_list = folder / "training_products.txt"
    if text_list.is_file():
        return TrainingRecord(text_list, frozenset(l.strip() for l in text_list.read_text().splitlines() if l.strip()))
    for path in sorted(folder.glob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ids = _ids_from_json(obj, path)
        if ids is not None:
            return TrainingRecord(path, ids)
    return None


def queries_from_training(queries: Sequence[Query], training: frozenset[str],
                          titles: Mapping[str, str] | None = None) -> list[str]:
    """Ids of queries built from training products (by `source`, else by exact title of a training product)."""
    trained_titles: set[str] = set()
    if titles:
        trained_titles = {normalise_title(t) for pid, t in titles.items() if pid in training}
    leaked = []
    for q in queries:
        if q.source:
            if any(pid in training for pid in q.source):
                leaked.append(q.id)
        elif q.text and normalise_title(q.text) in trained_titles:
            leaked.append(q.id)
    return leaked


def product_titles(ids: Iterable[str], store) -> dict[str, str]:
    """Titles of the given products from the store (to check queries that carry no source)."""
    from sqlalchemy import select

    from indexer.store import Product

    wanted = set(ids)
    with store.session() as s:
        return {pid: title for pid, title in s.execute(select(Product.id, Product.title)) if pid in wanted}
