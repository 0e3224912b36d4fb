"""Catalog reading: both real catalogs with their documented options, and every kind of bad row."""
from __future__ import annotations

import json
from dataclasses import fields

import pytest

from indexer.catalog import CatalogRow, RowError, parse_mapping, read_catalog
from indexer.errors import BadInput
from indexer.product import FIELDS, ProductData, ProductSummary
from indexer.images import ImageResolver, decode_image
from indexer_data import GROCERY, GROCERY_MAP, MYNTRA, MYNTRA_MAP, myntra_rows, write_csv


def _split(items):
    items = list(items)
    return [r for r in items if isinstance(r, CatalogRow)], [r for r in items if isinstance(r, RowError)]


@pytest.mark.slow
def test_myntra_rows_map_to_fields_with_fallbacks():
    rows, errors = _split(read_catalog(MYNTRA / "products.csv", parse_mapping(MYNTRA_MAP)))
    assert errors == [] and len(rows) == 44441  # every product, including the 7 without a title
    resolver = ImageResolver([MYNTRA], max_bytes=20 << 20)
    formats = {decode_image(resolver.read(r.image)[0], max_pixels=40_000_000)[1].format for r in rows}
    assert formats == {"JPEG"}  # every product's image (folder or zip fallback) loads
    by_id = {r.id: r for r in rows}
    jersey = by_id["1163"]
    assert jersey.category == "Apparel > Topwear > Tshirts"
    assert jersey.colour == "Blue" and jersey.price == 895.0
    assert jersey.image == "thumbs_60x80.zip#1163.jpg"  # no images_hr: falls back to the zip member
    assert jersey.attributes["Fit"] == "Regular Fit"  # JSON object columns are flattened into attributes
    assert "Fabric 3" not in jersey.attributes  # "NA" values are dropped
    assert "master_category" not in jersey.attributes  # mapped columns are not repeated as attributes
    assert by_id["30991"].title == "Issey Miyake L EAU D ISSEY"  # title falls back to the brand + variant template
    with_hr = next(r for r in rows if r.image.startswith("images_hr/"))
    assert with_hr.image.endswith(f"{with_hr.id}.jpg")
    assert all(r.price is not None for r in rows)


def test_grocery_catalog_with_documented_options():
    rows, errors = _split(read_catalog(GROCERY / "products.csv", parse_mapping(GROCERY_MAP)))
    assert errors == [] and len(rows) == 81
    apple = rows[0]
    assert (apple.id, apple.title, apple.category) == ("0", "Golden Delicious", "Fruit > Apple")
    assert apple.image == "iconic/00_Golden-Delicious.jpg"
    assert "store_title" in apple.attributes


def test_broken_quoting_costs_only_the_broken_row(tmp_path):
    rows, fields = myntra_rows(6)
    path = write_csv(tmp_path / "c.csv", rows, fields)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # Row 2 gets an opening quote that is never closed: a naive reader swallows the rest of the file.
    lines[2] = lines[2].replace(",", ',"', 1)
    path.write_text("".join(lines), encoding="utf-8")
    good, bad = _split(read_catalog(path, parse_mapping(MYNTRA_MAP)))
    assert [e.row_number for e in bad] == [2]
    assert "quot" in bad[0].reason
    assert [r.id for r in good] == [rows[i]["id"] for i in (0, 2, 3, 4, 5)]


def test_wrong_column_count_is_rejected(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,title,price\n1,Shirt,10\n2,Shoe\n3,Belt,5,extra\n4,Cap,3\n", encoding="utf-8")
    good, bad = _split(read_catalog(path))
    assert [r.id for r in good] == ["1", "4"]
    assert [e.row_number for e in bad] == [2, 3] and all("columns" in e.reason for e in bad)


def test_non_utf8_row_is_rejected_and_the_rest_read(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("id,title\n1,Caf\u00e9 shirt\n".encode("utf-8") + b"2,Caf\xe9 latin-1\n" + b"3,Plain\n")
    good, bad = _split(read_catalog(path))
    assert [r.id for r in good] == ["1", "3"] and good[0].title == "Caf\u00e9 shirt"
    assert bad[0].row_number == 2 and "UTF-8" in bad[0].reason and "0xe9" in bad[0].reason


def test_missing_and_duplicate_ids_missing_title_and_bad_prices(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,title,price\n1,Shirt,10\n,No id,5\n1,Again,7\n2,,4\n3,Cheap,abc\n4,Negative,-5\n"
                    "5,Thousands,\"1,299.50\"\n6,Free,\n", encoding="utf-8")
    good, bad = _split(read_catalog(path))
    assert {r.id: r.price for r in good} == {"1": 10.0, "5": 1299.5, "6": None}
    reasons = {e.row_number: e.reason for e in bad}
    assert "missing id" in reasons[2]
    assert "duplicate id '1'" in reasons[3] and "row 1" in reasons[3]
    assert "missing title" in reasons[4]
    assert "bad price 'abc'" in reasons[5] and "bad price '-5'" in reasons[6]


def test_json_lines_catalog(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "title": "Red dress", "price": 10, "attributes": {"Fabric": "Silk"}, "tags": ["x"]}),
        "{not json",
        json.dumps(["not", "an", "object"]),
        json.dumps({"sku": "b", "name": "Blue shoe"}),
    ]) + "\n", encoding="utf-8")
    good, bad = _split(read_catalog(path, parse_mapping(["id=id,sku", "title=title,name"])))
    assert [(r.id, r.title) for r in good] == [("a", "Red dress"), ("b", "Blue shoe")]
    assert good[0].price == 10.0 and good[0].attributes == {"Fabric": "Silk", "tags": "x"}
    assert [e.row_number for e in bad] == [2, 3]
    assert "invalid JSON" in bad[0].reason and "object" in bad[1].reason


def test_bad_mapping_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="unknown field 'colour_name'"):
        parse_mapping(["colour_name=base_colour"])
    with pytest.raises(BadInput, match="FIELD=COLUMN"):
        parse_mapping(["image"])
    with pytest.raises(BadInput, match="not found"):
        list(read_catalog(tmp_path / "missing.csv"))


def test_hashes_separate_text_changes_from_metadata_changes():
    rows, _ = _split(read_catalog(GROCERY / "products.csv", parse_mapping(GROCERY_MAP)))
    row = rows[0]
    cheaper = CatalogRow(**{**row.__dict__, "price": 1.0})
    renamed = CatalogRow(**{**row.__dict__, "title": "Golden apple"})
    assert cheaper.text_hash() == row.text_hash() and cheaper.meta_hash() != row.meta_hash()
    assert renamed.text_hash() != row.text_hash()


def test_hashes_of_an_unchanged_row_stay_what_earlier_runs_stored():
    # Stored with every product: a different hash for the same row would re-encode (text) or rewrite (meta) every
    # product of an existing index on its next run.
    rows, _ = _split(read_catalog(GROCERY / "products.csv", parse_mapping(GROCERY_MAP)))
    assert rows[0].text_hash() == "28de469772fbe9ce51c70a7015a354f72a83d3ec8e3aeaa8f33b22a5ad020f77"
    assert rows[0].meta_hash() == "3d5e07298ee7664e895e0d52cd08e1a3cbaaef4c14160765a1fbc6af0f7a92a8"


def test_every_field_a_catalog_maps_reaches_the_card_and_the_copy_facts(tmp_path):
    from search.products import ProductCard
    from web.copywriter.facts import CopyFacts

    record = {name: f"the {name}" for name in FIELDS} | {"price": "12.5", "Fabric": "Silk"}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    [row], _ = _split(read_catalog(path))
    assert {name: getattr(row, name) for name in FIELDS} == {name: record[name] for name in FIELDS} | {"price": 12.5}
    assert row.attributes == {"Fabric": "Silk"}
    card = ProductCard.from_record(row, key=7)
    copy = CopyFacts.from_record(row)
    assert {f.name: getattr(card, f.name) for f in fields(ProductSummary)} == \
           {f.name: getattr(row, f.name) for f in fields(ProductSummary)}
    assert {f.name: getattr(copy, f.name) for f in fields(ProductData)} == \
           {f.name: getattr(row, f.name) for f in fields(ProductData)}
