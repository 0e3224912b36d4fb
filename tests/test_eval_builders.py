"""Query builders and the held-out check on the real Myntra and grocery catalogs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from indexer.errors import BadInput
from search.evaluation import builders, heldout
from search.evaluation.trec import Query, read_qrels, read_queries, write_qrels, write_queries

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MYNTRA = SHARED / "myntra_fashion" / "products.csv"
GROCERY = SHARED / "grocery_store" / "products.csv"
PHOTOS = SHARED / "grocery_store" / "photo_queries.csv"


@pytest.fixture(scope="module")
def myntra_rows():
    return builders.read_catalog_rows(MYNTRA, ["colour=base_colour"])


@pytest.fixture(scope="module")
def grocery_rows():
    return builders.read_catalog_rows(GROCERY, ["id=product_id"])


def test_title_queries_are_deterministic_and_judge_identical_titles(myntra_rows):
    a = builders.title_queries(myntra_rows, 200, seed=7)
    b = builders.title_queries(myntra_rows, 200, seed=7)
    c = builders.title_queries(myntra_rows, 200, seed=8)
    assert a == b and a.queries != c.queries and len(a.queries) == 200
    by_id = {r["id"]: r for r in myntra_rows}
    shared_title = 0
    for q in a.queries:
        relevant = set(a.qrels[q.id])
        assert q.source[0] in relevant
        want = builders.normalise_title(q.text)
        assert relevant == {r["id"] for r in myntra_rows if builders.normalise_title(r["title"]) == want}
        assert builders.normalise_title(by_id[q.source[0]]["title"]) == want
        shared_title += len(relevant) > 1
    assert shared_title > 10  # Myntra titles repeat: "Puma Men Black T-shirt"


def test_title_queries_skip_training_products_and_their_titles(myntra_rows):
    training = {r["id"] for r in myntra_rows[: len(myntra_rows) // 2]}
    built = builders.title_queries(myntra_rows, 300, seed=1, exclude=training)
    trained_titles = {builders.normalise_title(r["title"]) for r in myntra_rows if r["id"] in training}
    for q in built.queries:
        assert q.source[0] not in training
        assert builders.normalise_title(q.text) not in trained_titles
    assert heldout.queries_from_training(built.queries, frozenset(training)) == []


def test_attribute_queries_judge_every_product_matching_all_attributes(myntra_rows):
    built = builders.attribute_queries(myntra_rows, 50, seed=3)
    assert built == builders.attribute_queries(myntra_rows, 50, seed=3)
    assert len(built.queries) == 50
    attrs = builders.MYNTRA_ATTRIBUTES
    for q in built.queries:
        relevant = set(built.qrels[q.id])
        assert 3 <= len(relevant) <= 500
        values = {tuple(by.get(a, "").casefold() for a in attrs) for by in myntra_rows if by["id"] in relevant}
        assert len(values) == 1  # every relevant product shares all four attributes
        (colour, usage, article, gender), = values
        assert q.text.startswith(colour) and q.text.endswith(f"for {gender}") and article in q.text
        assert relevant == {r["id"] for r in myntra_rows
                            if tuple(r.get(a, "").casefold() for a in attrs) == (colour, usage, article, gender)}


def test_attribute_phrase_reads_naturally():
    phrase = builders._phrase(builders.MYNTRA_TEMPLATE, {"base_colour": "Black", "usage": "Casual",
                                                         "article_type": "Casual Shoes", "gender": "Men"})
    assert phrase == "black casual shoes for men"


def test_attribute_queries_name_missing_columns(grocery_rows):
    with pytest.raises(BadInput, match="no column"):
        builders.attribute_queries(grocery_rows, 5, seed=0)


def test_photo_queries_from_the_grocery_list(grocery_rows, tmp_path):
    built = builders.photo_queries(PHOTOS, grocery_rows)
    with PHOTOS.open() as fh:
        labelled = {r["query_id"]: r for r in csv.DictReader(fh)}
    assert len(built.queries) == len(labelled) == 296
    for q in built.queries:
        assert q.type == "image" and q.image.is_file()
        assert built.qrels[q.id] == {labelled[q.id]["relevant_product_id"]: 1}
    partial = builders.photo_queries(PHOTOS, grocery_rows, n=20, seed=5, partial_field="coarse_class_id")
    assert partial == builders.photo_queries(PHOTOS, grocery_rows, n=20, seed=5, partial_field="coarse_class_id")
    coarse = {r["id"]: r["coarse_class_id"] for r in grocery_rows}
    for q in partial.queries:
        exact = labelled[q.id]["relevant_product_id"]
        assert partial.qrels[q.id][exact] == 2
        assert {p for p, rel in partial.qrels[q.id].items() if rel == 1} == \
            {p for p, c in coarse.items() if c == coarse[exact] and p != exact}
    # written files read back the same, photo paths relative to the queries file
    write_queries(tmp_path / "q.jsonl", built.queries)
    write_qrels(tmp_path / "r.txt", built.qrels)
    assert read_queries(tmp_path / "q.jsonl") == built.queries
    assert read_qrels(tmp_path / "r.txt") == built.qrels


def test_heldout_rebuilds_train_model_split(tmp_path):
    card = {"catalog": str(MYNTRA), "image_columns": ["image_hr", "thumb_60x80:thumbs_60x80.zip"],
            "holdout_column": "image_hr", "recipe": {"seed": 0, "holdout": 0.1, "val": 0.05, "max_train": None}}
    (tmp_path / "training.json").write_text(json.dumps(card))
    record = heldout.training_record(tmp_path)
    assert record is not None and record.source.name == "training.json"
    with MYNTRA.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    hr = [r["id"] for r in rows if r["image_hr"]]
    held = [pid for pid in hr if pid not in record.products]
    assert len(held) == round(0.1 * len(hr))  # the held-out 10% of the hi-res products, nothing else
    assert len(record.products) == len(rows) - len(held)
    queries = [Query("a", text="x", source=(held[0],)), Query("b", text="y", source=(hr[0] if hr[0] not in held else hr[1],))]
    assert heldout.queries_from_training(queries, record.products) == ["b"]


def test_heldout_accepts_an_explicit_list_and_titles(tmp_path):
    (tmp_path / "model_card.json").write_text(json.dumps({"data": {"training_products": ["1", "2"]}}))
    record = heldout.training_record(tmp_path)
    assert record.products == {"1", "2"}
    queries = [Query("q1", text="Red  dress"), Query("q2", text="blue shirt"), Query("q3", image=Path("/x.jpg"))]
    assert heldout.queries_from_training(queries, record.products, {"1": "red dress", "3": "blue shirt"}) == ["q1"]
    assert heldout.training_record(tmp_path / "missing") is None
