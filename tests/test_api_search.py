"""The HTTP API on a real index (300 Myntra products + the grocery catalog), through Flask's test client."""
from __future__ import annotations

import io
import struct
import zlib

from indexer_data import GROCERY, MYNTRA, grocery_photo_queries


def first_photo_query() -> tuple[bytes, str]:
    """An in-store grocery photo and the id of the product it shows."""
    row = grocery_photo_queries()[0]
    return (GROCERY / row["query_image_path"]).read_bytes(), row["relevant_product_id"]


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.data[:300]
    body = response.get_json()
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body


def test_text_search_returns_relevant_results_and_facets(client):
    r = client.get("/api/v1/search?q=watch&k=5")
    assert r.status_code == 200
    body = r.get_json()
    assert body["index_version"].startswith("v") and body["query"]["mode"] == "hybrid"
    assert len(body["results"]) == 5
    top = body["results"][0]
    assert {"id", "title", "score", "image_url"} <= set(top)
    assert sum("Watch" in (h["category"] or "") for h in body["results"]) >= 4
    assert top["image_url"] == f"/images/{top['id']}"
    assert any(f["value"] == "Watches" for f in body["facets"]["category"])
    assert set(body["timings_ms"]) >= {"encode", "vector_search", "lexical", "metadata", "render"}


def test_filters_narrow_and_facet_counts_match(client):
    wide = client.get("/api/v1/search?q=shoes&k=100").get_json()
    men = client.get("/api/v1/search?q=shoes&k=100&gender=Men").get_json()
    assert 0 < men["total"] < wide["total"]
    assert all(h["gender"] == "Men" for h in men["results"])
    men_facet = next(f["count"] for f in wide["facets"]["gender"] if f["value"] == "Men")
    assert men_facet == men["total"]
    priced = client.get("/api/v1/search?q=shoes&k=100&price_min=1000&price_max=2000").get_json()
    assert priced["results"] and all(1000 <= h["price"] <= 2000 for h in priced["results"])
    footwear = client.get("/api/v1/search?q=black&k=100&category=Footwear").get_json()
    assert footwear["results"] and all(h["category"].startswith("Footwear") for h in footwear["results"])


def test_pages_do_not_overlap(client):
    p1 = client.get("/api/v1/search?q=shirt&k=5&page=1").get_json()
    p2 = client.get("/api/v1/search?q=shirt&k=5&page=2").get_json()
    assert p1["total"] == p2["total"] > 10
    assert not {h["id"] for h in p1["results"]} & {h["id"] for h in p2["results"]}


def test_nonsense_query_returns_few_results(client):
    body = client.get("/api/v1/search?q=qzxv%20blorptk%20wmfz&k=50").get_json()
    real = client.get("/api/v1/search?q=blue%20shirt&k=50").get_json()
    assert body["total"] <= 5 < real["total"]


def test_score_floors_are_measured_on_this_catalog(client, app):
    """The floors come from this 381-product version, not from the 44k catalog: short shopper phrases keep vector
    hits (the 44k constants left most of them with none), and random strings still find little."""
    from indexer.calibration import SHOPPER_PHRASES, nonsense_queries
    from indexer.config import UNCALIBRATED_FLOORS

    floors = client.get("/api/v1/status").get_json()["search"]["text_score_floors"]
    assert set(floors) == {"image", "text", "fused", "multilingual"}
    assert all(0 < floors[kind] < UNCALIBRATED_FLOORS[kind] for kind in ("image", "text", "fused"))

    def totals(queries, mode: str) -> list[int]:
        return [client.get("/api/v1/search", query_string={"q": q, "mode": mode, "k": 5}).get_json()["total"]
                for q in queries]

    phrases = totals(SHOPPER_PHRASES, "fused")
    assert sum(t > 0 for t in phrases) >= 0.75 * len(SHOPPER_PHRASES)
    nonsense = totals(nonsense_queries(50, seed=1), "hybrid")  # other strings than the floors were measured with
    assert sum(t == 0 for t in nonsense) >= 40 and max(nonsense) <= 3


def test_negative_text_steers_away(client):
    plain = client.get("/api/v1/search?q=tshirt&k=20").get_json()
    without = client.get("/api/v1/search?q=tshirt%20without%20print&k=20").get_json()
    assert without["query"]["negative"] == "print"
    printed = lambda body: sum("print" in h["title"].lower() for h in body["results"])  # noqa: E731
    assert printed(without) == 0 < printed(plain)


def test_photo_search_finds_the_grocery_product(client):
    data, relevant = first_photo_query()
    r = client.post("/api/v1/search", data={"image": (io.BytesIO(data), "photo.jpg"), "k": "10"},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.data[:300]
    body = r.get_json()
    assert body["query"]["kind"] == "image"
    ids = [h["id"] for h in body["results"]]
    grocery_ids = {str(i) for i in range(81)}
    assert sum(i in grocery_ids for i in ids[:5]) >= 4  # a photo of fruit finds groceries, not fashion


def test_in_store_photos_keep_their_product_above_the_photo_floor(client):
    """The photo floor must not cut the product a shopper photographed: in-store photos score lower against the
    catalogue shot than look-alikes of a catalogue photo do."""
    rows = grocery_photo_queries()
    found = 0
    for row in rows:
        data = {"image": (io.BytesIO((GROCERY / row["query_image_path"]).read_bytes()), "p.jpg"), "k": "50"}
        body = client.post("/api/v1/search", data=data, content_type="multipart/form-data").get_json()
        found += row["relevant_product_id"] in {h["id"] for h in body["results"]}
    assert found >= 0.88 * len(rows)


def test_photo_plus_text_moves_towards_the_text(client):
    photo = next((MYNTRA / "images_hr").glob("*.jpg")).read_bytes()
    def search(text: str, weight: str) -> dict:
        data = {"image": (io.BytesIO(photo), "p.jpg"), "k": "10", "image_weight": weight, "category": "Apparel"}
        r = client.post("/api/v1/search", data={**data, "q": text} if text else data,
                        content_type="multipart/form-data")
        assert r.status_code == 200, r.data[:300]
        assert r.get_json()["query"]["kind"] == ("image+text" if text else "image")
        return r.get_json()
    def reds(body: dict) -> int:
        return [h["colour"] for h in body["results"]].count("Red")
    assert reds(search("red", "0.3")) > reds(search("red", "1.0"))
    # the words re-rank the look-alikes; they do not shrink the matching set to the few that match both
    assert search("red", "0.6")["total"] >= search("", "0.6")["total"] > 20


def test_similar_and_product(client):
    hit = client.get("/api/v1/search?q=handbag&k=1").get_json()["results"][0]
    product = client.get(f"/api/v1/products/{hit['id']}").get_json()
    assert product["id"] == hit["id"] and product["title"] == hit["title"]
    assert product["similar_url"] == f"/api/v1/products/{hit['id']}/similar"
    similar = client.get(product["similar_url"] + "?k=5").get_json()
    assert similar["query"]["kind"] == "similar"
    assert hit["id"] not in [h["id"] for h in similar["results"]]
    assert sum("Bags" in (h["category"] or "") for h in similar["results"]) >= 3
    assert_error(client.get("/api/v1/products/no-such-id"), 404, "not_found")
    assert_error(client.get("/api/v1/products/no-such-id/similar"), 404, "not_found")


def test_product_images_are_served_and_paths_never_followed(client):
    hit = client.get("/api/v1/search?q=watch&k=1").get_json()["results"][0]
    r = client.get(hit["image_url"])
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:3] == b"\xff\xd8\xff"
    for path in ("/images/..%2F..%2Fetc%2Fpasswd", "/images/../../etc/passwd", "/images/%2Fetc%2Fpasswd",
                 "/images/1163%00"):
        r = client.get(path)
        assert r.status_code in (400, 404) and r.is_json and b"root:" not in r.data


def test_bad_input_is_4xx_json_never_500(client, app):
    assert_error(client.get("/api/v1/search?q=a&k=0"), 400, "bad_input")
    assert_error(client.get("/api/v1/search?q=a&k=ten"), 400)
    assert_error(client.get("/api/v1/search?q=a&page=-1"), 400)
    assert client.get("/api/v1/search?q=a&price_min=9&price_max=1").get_json()["total"] == 0
    assert_error(client.get("/api/v1/search?q=a&mode=psychic"), 400)
    assert client.get("/api/v1/search").get_json()["query"]["kind"] == "browse"
    assert_error(client.get("/api/v1/search?q=" + "x" * 513), 400)
    assert_error(client.delete("/api/v1/search"), 405)
    assert_error(client.post("/api/v1/search", data={"q": "x"}, content_type="multipart/form-data"), 400)
    assert_error(client.post("/api/v1/search", data=b"{}", content_type="application/json"), 400)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions in a few bytes (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def upload(client, data: bytes, name: str = "x.jpg", *, path: str = "/api/v1/search", form: dict | None = None):
    """POST `data` as the multipart photo `image` (to search, or another photo route, with more form fields)."""
    return client.post(path, data={**(form or {}), "image": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_uploads_are_checked_before_decoding(client, app):
    body = assert_error(upload(client, png_header(60_000, 60_000)), 400, "bad_image")
    assert "pixel" in body["error"]["message"]
    assert_error(upload(client, b"BM" + b"\x00" * 100, "x.bmp"), 415, "bad_image")
    assert_error(upload(client, b"%PDF-1.4 hello", "x.pdf"), 415)
    assert_error(upload(client, b"\xff\xd8\xff\xe0" + b"\x00" * 50, "x.jpg"), 400)  # truncated JPEG
    assert_error(upload(client, b"", "x.jpg"), 400)
    big = app.config["SHOPLENS"].max_request_bytes + 1
    assert_error(upload(client, b"\xff\xd8\xff" + b"\x00" * big), 413, "request_too_large")


def test_upload_over_image_cap_under_body_cap_is_413(real_home):
    from web.app import create_app

    app = create_app({"home": real_home, "max_image_bytes": 1000, "rate_limit_per_minute": 0})
    photo = next((MYNTRA / "images_hr").glob("*.jpg")).read_bytes()
    assert_error(upload(app.test_client(), photo), 413, "bad_image")


def test_rate_limit_answers_429_with_retry_after(real_home):
    from web.app import create_app

    client = create_app({"home": real_home, "rate_limit_per_minute": 4}).test_client()
    statuses = [client.get("/api/v1/search?q=a&k=ten").status_code for _ in range(3)]
    assert statuses[0] == 400 and statuses[-1] == 429
    r = client.get("/api/v1/search?q=watch")
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200  # probes are never throttled


def test_cors_is_off_unless_configured(client, real_home):
    from web.app import create_app

    r = client.get("/api/v1/status", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    configured = create_app({"home": real_home, "cors_origins": ("https://shop.example",)}).test_client()
    ok = configured.get("/api/v1/status", headers={"Origin": "https://shop.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = configured.get("/api/v1/status", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_api_key_guards_writing_endpoints(real_home):
    from flask import Blueprint, jsonify

    from web.app import create_app
    from web.auth import require_api_key

    bp = Blueprint("writes_probe", __name__)

    @bp.post("/api/v1/probe")
    @require_api_key
    def probe():
        return jsonify({"written": True})

    keyless = create_app({"home": real_home})
    keyless.register_blueprint(bp)
    assert_error(keyless.test_client().post("/api/v1/probe"), 401, "unauthorized")
    assert_error(keyless.test_client().post("/api/v1/probe", headers={"Authorization": "Bearer x"}), 403,
                 "writes_disabled")
    keyed = create_app({"home": real_home, "api_key": "s3cret"})
    keyed.register_blueprint(bp)
    c = keyed.test_client()
    assert_error(c.post("/api/v1/probe"), 401, "unauthorized")
    assert_error(c.post("/api/v1/probe", headers={"Authorization": "Bearer wrong"}), 401)
    assert c.post("/api/v1/probe", headers={"Authorization": "Bearer s3cret"}).get_json() == {"written": True}


def test_status_health_metrics_and_openapi(client):
    status = client.get("/api/v1/status").get_json()
    assert status["products"] == 381 and status["index"]["vectors"] == 381
    health = client.get("/healthz").get_json()
    assert health == {"status": "ok", "index_version": status["index"]["version"]}
    client.get("/api/v1/search?q=watch")
    metrics = client.get("/metrics").data.decode()
    for stage in ("encode", "vector_search", "metadata", "render"):
        assert f'shoplens_stage_seconds_bucket{{kind="text",le="0.05",stage="{stage}"}}' in metrics
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/search", "/api/v1/products/{product_id}", "/api/v1/products/{product_id}/similar",
            "/api/v1/status", "/healthz", "/images/{product_id}"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/v1/search"]) == {"get", "post"}
    q = next(p for p in spec["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "q")
    assert q["schema"]["maxLength"] == 512


def _cache_counts(client) -> dict[str, float]:
    lines = client.get("/metrics").data.decode().splitlines()
    return {line.split()[0].removeprefix("shoplens_query_cache_"): float(line.split()[1]) for line in lines
            if line.startswith("shoplens_query_cache_")}


def test_metrics_report_the_query_cache_and_a_repeated_query_hits_it(client):
    query = "/api/v1/search?q=navy+linen+shirt+for+a+cache+test&mode=text"
    before = _cache_counts(client)
    first = client.get(query).get_json()
    after_first = _cache_counts(client)
    second = client.get(query).get_json()
    after_second = _cache_counts(client)
    assert after_first["misses"] == before["misses"] + 1 and after_first["entries"] == before["entries"] + 1
    assert after_second["hits"] == after_first["hits"] + 1 and after_second["misses"] == after_first["misses"]
    assert [h["id"] for h in second["results"]] == [h["id"] for h in first["results"]]


def test_suggestions(client):
    body = client.get("/api/v1/suggest?q=wat").get_json()
    assert body["suggestions"] and body["suggestions"][0]["text"].lower().startswith("wat")
    assert_error(client.get("/api/v1/suggest"), 400)


def test_healthz_is_503_without_an_index_but_the_spec_is_served(tmp_path, client):
    from indexer.store import upgrade
    from indexer.config import default_db_url
    from web.app import create_app

    upgrade(default_db_url(tmp_path))
    indexless = create_app({"home": tmp_path}).test_client()
    assert_error(indexless.get("/healthz"), 503, "no_index")
    assert_error(indexless.get("/api/v1/search?q=shoes"), 503, "no_index")
    spec = indexless.get("/api/v1/openapi.json")
    assert spec.status_code == 200 and spec.mimetype == "application/json"
    # The same spec as with an index: test_api_fuzz reads it from an index-less app and fuzzes the indexed one.
    assert spec.get_json() == client.get("/api/v1/openapi.json").get_json()
