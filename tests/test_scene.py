"""Scene photos (shop the look): region proposals as pure functions, and room photos through POST /api/v1/search
on a real index of IKEA products (the products of three rooms plus others, indexed with the README's options)."""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from indexer_data import DATASETS, GROCERY, MYNTRA, index_catalog, shoplens, write_csv
from search.ranking.scene import region_scores
from indexer.config import SearchSettings
from search.regions import Box, grid_boxes, plain_border, propose

IKEA = DATASETS / "ikea_interior"
IKEA_MAP = ["id=product_id", "image=image_path", "category=category_path"]
ROOMS = ("room012", "room000", "room002")  # room012's large crops are least like the whole photo of the first rooms


def room(query_id: str) -> dict:
    with open(IKEA / "room_queries.csv", newline="", encoding="utf-8") as fh:
        return next(r for r in csv.DictReader(fh) if r["query_id"] == query_id)


def post(client, data: bytes, **form: str):
    return client.post("/api/v1/search", data={"image": (io.BytesIO(data), "photo.jpg"), **form},
                       content_type="multipart/form-data")


# --- proposals and merging (no index) -----------------------------------------------------------------------
def test_grid_covers_every_pixel_with_crops_inside_the_photo():
    boxes = grid_boxes(512, 383, [0.35, 0.25], 0.5)
    covered = np.zeros((383, 512), dtype=bool)
    for b in boxes:
        assert b.x >= 0 and b.y >= 0 and b.x + b.w <= 512 and b.y + b.h <= 383 and b.w == b.h
        covered[b.y:b.y + b.h, b.x:b.x + b.w] = True
    assert covered.all()
    assert {b.w for b in boxes} == {round(383 * 0.35), round(383 * 0.25)}


def test_proposals_keep_the_crops_with_things_in_them():
    """A plain wall with one framed picture in its lower right corner: the crops kept are the ones over it."""
    image = Image.new("RGB", (400, 300), (235, 230, 220))
    ImageDraw.Draw(image).rectangle((300, 200, 380, 280), outline=(20, 20, 20), width=4)
    kept = propose(image, [0.4], 0.5, keep=0.15)  # 4 of the 24 crops
    assert kept and all(b.x + b.w > 300 and b.y + b.h > 200 for b in kept)
    assert len(propose(image, [0.4], 0.5, keep=1.0, limit=3)) == 3


def test_a_studio_shot_is_told_from_a_room_by_its_border_before_anything_is_encoded():
    plain = SearchSettings().scene_plain_border
    with open(IKEA / "room_queries.csv", newline="", encoding="utf-8") as fh:
        rooms = [IKEA / r["query_image_path"] for r in csv.DictReader(fh)]
    assert len(rooms) > 100 and max(plain_border(Image.open(p)) for p in rooms) < plain  # every room is encoded
    shots = sorted((IKEA / "images").glob("*.jpg"))[:40] + sorted((MYNTRA / "images_hr").glob("*.jpg"))[:40]
    skipped = np.mean([plain_border(Image.open(p)) >= plain for p in shots])
    assert skipped >= 0.8  # most catalogue photos skip the five-crop scene test


def test_a_product_like_every_region_loses_to_one_that_stands_out():
    """Product 0 is a little like all four regions (a hub); product 1 is very like region 2 only."""
    cosines = np.array([[0.50, 0.20, 0.30], [0.50, 0.21, 0.30], [0.45, 0.80, 0.30], [0.50, 0.22, 0.30]])
    scores, best = region_scores(cosines, (np.full(4, 0.3), np.full(4, 0.1)))
    assert scores[1] > scores[0] and best[1] == 2


# --- real data ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ikea_client(tmp_path_factory):
    """An app on ~60 IKEA products: everything listed for ROOMS, then other products up to 60."""
    home = tmp_path_factory.mktemp("ikea-home")
    listed = {p for q in ROOMS for p in room(q)["relevant_product_ids"].split(";")}
    with open(IKEA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    chosen = [r for r in rows if r["product_id"] in listed]
    chosen += [r for r in rows if r["product_id"] not in listed][: max(0, 60 - len(chosen))]
    shoplens(home, "migrate")
    index_catalog(home, write_csv(home / "ikea_subset.csv", chosen, fields), IKEA_MAP, "--images-root", str(IKEA))
    from web.app import create_app

    return create_app({"home": home, "rate_limit_per_minute": 0}).test_client()


def test_a_room_photo_returns_its_products_with_the_regions_they_matched(ikea_client):
    listed = room("room012")
    photo = (IKEA / listed["query_image_path"]).read_bytes()
    width, height = Image.open(io.BytesIO(photo)).size
    body = post(ikea_client, photo, k="10").get_json()  # scene=auto: a room is told from a product photo
    assert body["query"]["kind"] == "scene" and body["query"]["scene"] is True
    assert body["query"]["photo_size"] == {"width": width, "height": height}
    regions = {r["id"]: r for r in body["regions"]}
    assert len(regions) >= 2  # the products come from different parts of the room
    for result in body["results"]:
        box = result["region"]
        assert regions[box["id"]]["x"] == box["x"] and result["id"] in regions[box["id"]]["results"]
        assert 0 <= box["x"] and box["x"] + box["w"] <= width and 0 <= box["y"] and box["y"] + box["h"] <= height
    relevant = set(listed["relevant_product_ids"].split(";"))
    found = lambda b: len(relevant & {i for r in b["results"] for i in [r["id"], *r["duplicates"]]})  # noqa: E731
    whole = post(ikea_client, photo, k="10", scene="off").get_json()
    assert whole["query"]["kind"] == "image" and whole["regions"] == [] and "region" not in whole["results"][0]
    assert found(body) >= max(2, found(whole))


def test_scene_can_be_forced_and_bad_values_are_400(ikea_client):
    photo = (IKEA / "images" / f"{room('room000')['relevant_product_ids'].split(';')[0]}.jpg").read_bytes()
    assert post(ikea_client, photo, scene="on").get_json()["query"]["kind"] == "scene"
    for form in ({"scene": "maybe"}, {"scene": "on", "q": "in blue"}):
        r = post(ikea_client, photo, **form)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_input"


@pytest.mark.parametrize("photo", [GROCERY / "iconic" / "19_Peach.jpg", "myntra"], ids=["grocery", "myntra"])
def test_a_single_product_photo_is_answered_as_before(client, photo):
    data = (next((MYNTRA / "images_hr").glob("*.jpg")) if photo == "myntra" else photo).read_bytes()
    auto, off = post(client, data, k="20").get_json(), post(client, data, k="20", scene="off").get_json()
    assert auto["query"]["kind"] == "image" and auto["regions"] == []
    assert [(r["id"], r["score"]) for r in auto["results"]] == [(r["id"], r["score"]) for r in off["results"]]


def test_the_results_page_outlines_the_regions_and_labels_the_cards(ikea_client):
    photo = (IKEA / room("room012")["query_image_path"]).read_bytes()
    r = ikea_client.post("/search", data={"image": (io.BytesIO(photo), "room.jpg")},
                         content_type="multipart/form-data", follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "data-scene" in html and "Products in your photo" in html
    outlined = set(re.findall(r'data-region="(\d+)"', html))
    labelled = set(re.findall(r'data-matched-region="(\d+)"', html))
    assert len(outlined) >= 2 and labelled == outlined
