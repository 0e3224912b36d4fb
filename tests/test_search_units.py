"""Pure building blocks of search and the API: fusion, filters, negative queries, collapse, rate limit, params."""
from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.config import load_settings
from indexer.errors import BadInput, ConfigError
from indexer.config import UNCALIBRATED_FLOORS, SearchSettings, parse_hybrid
from indexer.vectors import IndexPlan, LoadedVersion, build_index, write_index
from search.dedupe import collapse
from search.filters import Filters, category_matches
from search.fusion import blend, fuse, rrf
from search.products import ProductCard, ProductTable
from search.query import split_negative
from search.ranking.floors import floor, text_floor
from search.vectors import exact_among, vector_search
from web.openapi import Param
from web.ratelimit import TokenBuckets


def facts(key: int, title: str = "t", *, brand=None, category=None, colour=None, gender=None, price=None,
          image_hash=None) -> ProductCard:
    return ProductCard(key=key, id=str(key), title=title, brand=brand, category=category, colour=colour,
                        gender=gender, price=price, currency="INR", image_hash=image_hash, has_image=True)


def test_rrf_rewards_agreement_between_rankers():
    vector = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 12.0), (4, 9.0), (1, 3.0)]
    fused = rrf([vector, lexical], k=60)
    keys = [k for k, _ in fused]
    # 1 and 3 are found by both rankers and beat 2 and 4, found by one.
    assert set(keys[:2]) == {1, 3}
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 63)


def test_blend_keeps_score_gaps_and_alpha_picks_a_side():
    vector = [(1, 0.90), (2, 0.89), (5, 0.50)]
    lexical = [(2, 20.0), (3, 1.0)]
    assert blend(vector, lexical, alpha=1.0)[0][0] == 1
    assert blend(vector, lexical, alpha=0.0)[0][0] == 2
    assert blend(vector, lexical, alpha=0.5)[0][0] == 2  # found by both


def test_hybrid_spec_parsing():
    assert parse_hybrid("rrf") == ("rrf", 60.0, 1.0)
    assert parse_hybrid("rrf:10:2") == ("rrf", 10.0, 2.0)
    assert parse_hybrid("blend:0.7") == ("blend", 0.7, pytest.approx(0.3))
    assert fuse([(1, 1.0), (2, 0.5)], [(2, 9.0), (3, 1.0)], "rrf:60:3")[0][0] == 2
    assert fuse([(1, 1.0)], [(2, 1.0)], "blend:1")[0][0] == 1
    for bad in ("magic", "blend:2", "rrf:-1", "rrf:x", "blend:0.1:2"):
        with pytest.raises(ValueError):
            parse_hybrid(bad)
    with pytest.raises(ConfigError):
        SearchSettings(hybrid="magic")


def test_a_setting_out_of_its_choices_is_named_with_the_choices(tmp_path):
    """One check for every "one of" setting: the error names the setting, what it may be and what it got."""
    with pytest.raises(ConfigError, match=r"search setting text_mode must be one of .*not 'fuzzy'"):
        SearchSettings(text_mode="fuzzy")
    with pytest.raises(ConfigError, match=r"setting read_text must be one of auto, on, off, not 'maybe'"):
        load_settings(home=tmp_path, read_text="maybe")
    with pytest.raises(ConfigError, match=r"setting inference must be one of auto, onnx, eager, not 'tpu'"):
        load_settings(home=tmp_path, inference="tpu")


def test_text_floor_is_configured_else_measured_else_the_uncalibrated_default(monkeypatch, tmp_path):
    measured = {"text": 0.3, "fused": 0.25}
    assert SearchSettings().text_floor("fused", measured) == 0.25
    assert SearchSettings().text_floor("image", measured) == UNCALIBRATED_FLOORS["image"]  # a version without one
    assert SearchSettings(min_fused_score=0.5).text_floor("fused", measured) == 0.5
    monkeypatch.setenv("SHOPLENS_SEARCH_MIN_TEXT_SCORE", "0.4")
    monkeypatch.setenv("SHOPLENS_SEARCH_MIN_CROSS_SCORE", "auto")
    cfg = load_settings(home=tmp_path).search
    assert (cfg.min_text_score, cfg.min_cross_score) == (0.4, None)
    assert load_settings(home=tmp_path, search={"min_text_score": "0.5"}).search.min_text_score == 0.5
    monkeypatch.setenv("SHOPLENS_SEARCH_MIN_TEXT_SCORE", "high")
    with pytest.raises(ConfigError, match="min_text_score"):
        load_settings(home=tmp_path)


def test_filters_parse_aliases_and_reject_bad_values():
    f = Filters.parse([("Brand", "Nike"), ("color", "Blue"), ("brand", "Puma"), ("min_price", "100")])
    assert f.brand == ("Nike", "Puma") and f.colour == ("Blue",) and f.price_min == 100
    assert Filters.parse_cli(["gender=Men", "price_max=999"]).pairs() == [("gender", "Men"), ("price_max", "999")]
    for bad in ([("size", "M")], [("price_min", "cheap")], [("price_min", "nan")], [("price_max", "-1")]):
        with pytest.raises(BadInput):
            Filters.parse(bad)
    with pytest.raises(BadInput):
        Filters.parse_cli(["brand"])


def test_category_matches_any_level_and_partial_paths():
    path = "Apparel > Topwear > Tshirts"
    assert category_matches(path, "topwear")
    assert category_matches(path, "Tshirts")
    assert category_matches(path, "Apparel > Topwear")
    assert category_matches(path, "topwear>tshirts")
    assert not category_matches(path, "Apparel > Tshirts")  # not contiguous
    assert not category_matches(path, "Shirts")
    assert not category_matches(None, "Apparel")


def test_product_table_masks_and_facets():
    table = ProductTable.from_cards([
        facts(1, brand="Nike", category="Footwear > Shoes > Sports Shoes", colour="Black", gender="Men", price=2999),
        facts(2, brand="Puma", category="Apparel > Topwear > Tshirts", colour="Blue", gender="Men", price=799),
        facts(3, brand="nike", category="Apparel > Topwear > Tshirts", colour="Blue", gender="Women", price=None),
    ])
    keys = lambda f: sorted(table.allowed_keys(Filters.parse(f)).tolist())  # noqa: E731
    assert keys([("brand", "NIKE")]) == [1, 3]
    assert keys([("category", "Topwear")]) == [2, 3]
    assert keys([("category", "Footwear"), ("gender", "Men")]) == [1]
    assert keys([("price_max", "1000")]) == [2]  # no price: fails a price bound
    assert keys([("price_min", "1000"), ("price_max", "10")]) == []
    assert table.allowed_keys(Filters()) is None
    facets = table.facets([1, 2, 3])
    assert {"value": "Tshirts", "count": 2} in facets["category"]
    assert facets["price"] == [{"min": 500, "max": 1000, "count": 1}, {"min": 2000, "max": 3000, "count": 1}]


@pytest.mark.parametrize("text,expected", [
    ("white sneakers without logo", ("white sneakers", "logo")),
    ("kurta w/o embroidery", ("kurta", "embroidery")),
    ("tshirt -stripes -logo", ("tshirt", "stripes logo")),
    ("t-shirt", ("t-shirt", "")),
    ("without", ("without", "")),
])
def test_split_negative(text, expected):
    assert split_negative(text) == expected


def test_collapse_folds_same_image_and_same_title_near_identical_vectors():
    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([0.999, 0.0447], dtype=np.float32)
    c = np.array([0.0, 1.0], dtype=np.float32)
    # Keys 1-6 in rank order: 1 "Red Tee" image h1, 2 "Blue Tee" h1, 3 "red  tee" h3, 4 "Red Tee" h4, 5 and 6
    # "Blue Tee" without an image.
    table = ProductTable.from_cards([facts(1, "Red Tee", image_hash="h1"), facts(2, "Blue Tee", image_hash="h1"),
                                     facts(3, "red  tee", image_hash="h3"), facts(4, "Red Tee", image_hash="h4"),
                                     facts(5, "Blue Tee"), facts(6, "Blue Tee")])
    keys = np.array([1, 2, 3, 4, 5, 6])
    titles, images = table.duplicate_codes
    rows = table.rows_of(keys)
    vectors = {1: a, 3: b, 4: c}
    kept = collapse(keys, titles[rows], images[rows], threshold=0.97,
                    vectors=lambda wanted: {k: vectors[k] for k in wanted if k in vectors})
    # 2: same bytes as 1; 3: same title, near-identical photo; 4: same title, another photo; 5, 6: no image, no
    # vector, so nothing to compare: both kept.
    assert kept == [(0, [1, 2]), (3, []), (4, []), (5, [])]
    assert table.rows_of(np.array([4, 99])).tolist() == [3, -1]


def test_token_buckets_allow_bursts_then_ask_to_wait():
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    wait = buckets.take("a")
    assert 0 < wait <= 1.0
    assert buckets.take("b") == 0  # per client
    now[0] += 1.0
    assert buckets.take("a") == 0


def test_param_parsing_names_the_parameter(app_context):
    k = Param("k", "integer", minimum=1, maximum=100)
    assert k.parse("7") == 7
    for raw in ("0", "101", "x", "1e3", ""):
        with pytest.raises(BadInput, match="k"):
            k.parse(raw)
    q = Param("q", max_length="max_query_chars")
    with pytest.raises(BadInput, match="limit is 512"):
        q.parse("a" * 513)
    assert Param("b", "boolean").parse("false") is False


@pytest.fixture
def app_context(tmp_path):
    from web.app import create_app

    app = create_app({"home": tmp_path})
    with app.app_context():
        yield app


def test_floor_keeps_hits_above_the_floor_and_within_the_margin_of_the_best():
    ranking = [(1, 0.80), (2, 0.65), (3, 0.55), (4, 0.40)]
    assert floor(ranking, 0.5) == ranking[:3]
    assert floor(ranking, 0.5, margin=0.2) == ranking[:2]  # 0.55 is more than 0.2 below the best hit
    assert floor(ranking, 0.9, margin=0.2) == []  # the absolute floor holds whatever the best hit scores
    assert floor([(5, 0.3), (6, 0.29)], 0.1, margin=0.05) == [(5, 0.3), (6, 0.29)]  # a flat ranking stays
    assert floor([], 0.5, margin=0.1) == []


def test_text_floor_reads_the_floors_the_index_version_measured(tmp_path):
    version = _version(tmp_path / "v1", IndexPlan("flat"), _unit_vectors(10, 8), np.arange(10, dtype=np.int64))
    assert text_floor(SearchSettings(), version, "text") == 0.33
    assert text_floor(SearchSettings(), version, "fused") == UNCALIBRATED_FLOORS["fused"]
    assert text_floor(SearchSettings(min_text_score=0.5), version, "text") == 0.5


def _version(folder, plan: IndexPlan, vectors: np.ndarray, keys: np.ndarray, index=None) -> LoadedVersion:
    """A published-looking index version with one kind ("image") of `vectors`, built as `plan` says (or `index`)."""
    folder.mkdir()
    index = build_index(vectors, keys, plan) if index is None else index
    if plan.type == "ivf":
        files = index.save(folder, "image")
        np.save(folder / "keys.npy", keys)
    else:
        write_index(index, folder / "image.faiss")
        files = {"file": "image.faiss"}
    manifest = {"name": folder.name, "model": "m", "score_floors": {"text": 0.33}, "keys": "keys.npy",
                "kinds": {"image": {**files, "type": plan.type, "params": plan.params}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return LoadedVersion(folder)


def _unit_vectors(n: int, dim: int) -> np.ndarray:
    import faiss

    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


def test_a_narrow_filter_on_a_graph_index_is_searched_exactly(tmp_path):
    x = _unit_vectors(5_000, 32)
    keys = np.arange(len(x), dtype=np.int64) * 3 + 1
    graph = _version(tmp_path / "v1", IndexPlan("hnsw", {"M": 8, "efConstruction": 40, "efSearch": 16}), x, keys)
    flat = _version(tmp_path / "v2", IndexPlan("flat"), x, keys)
    allowed = keys[::250]  # 20 products pass the filter
    query = x[7]
    exact = sorted(((int(k), float(v @ query)) for k, v in zip(keys, x)), key=lambda kv: -kv[1])
    expected = [(k, s) for k, s in exact if k in set(allowed.tolist())][:10]
    found = exact_among(graph.index("image"), query, allowed, 10)
    assert [k for k, _ in found] == [k for k, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5)
    # The graph's exact path and the flat index's filtered FAISS search (an id selector) give the same ranking.
    by_graph = vector_search(graph, "image", query, allowed, 10)
    by_flat = vector_search(flat, "image", query, allowed, 10)
    assert [k for k, _ in by_graph] == [k for k, _ in by_flat] == [k for k, _ in expected]
    np.testing.assert_allclose([s for _, s in by_graph], [s for _, s in by_flat], rtol=1e-5)
    assert vector_search(flat, "image", query, allowed[:0], 10) == []  # a filter nothing passes
    assert [k for k, _ in vector_search(flat, "image", query, None, 3)] == [k for k, _ in exact[:3]]  # no filter


def test_a_compressed_version_is_searched_with_filters_and_re_ranked_exactly(tmp_path):
    from indexer.vectors import choose_index_type

    rng = np.random.default_rng(1)
    centres = _unit_vectors(200, 64)
    x = centres[rng.integers(0, 200, 12_000)] + 0.1 * rng.standard_normal((12_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    keys = np.arange(len(x), dtype=np.int64) * 3 + 1
    plan = choose_index_type(len(x), 64, 2 << 20, exact_max_bytes=1 << 16)
    assert plan.type == "ivf"
    version = _version(tmp_path / "v1", plan, x, keys)
    index = version.index("image")
    assert isinstance(index.store, np.memmap) and index.ntotal == len(x)
    stored = x.astype(np.float16).astype(np.float32)
    for allowed in (None, keys[::2], keys[::500]):  # no filter, a wide one (IVF with a selector), a narrow one
        query = x[7]
        pool = np.arange(len(x)) if allowed is None else (allowed - 1) // 3
        order = pool[np.argsort(-(stored[pool] @ query))][:10]
        found = vector_search(version, "image", query, allowed, 10)
        assert len(set(keys[order].tolist()) & {k for k, _ in found}) >= 9
        assert found[0][0] == keys[order[0]]
        np.testing.assert_allclose(found[0][1], stored[order[0]] @ query, rtol=1e-5)  # exact score, not a code's


def test_stored_vectors_come_from_the_database_when_the_index_keeps_only_codes(tmp_path):
    from indexer.store import Embedding, Product, open_store, pack_vector
    from search.state import IndexState
    from search.vectors import similarities, stored_vectors

    x = _unit_vectors(640, 16)  # 16 PQ centroids want 39 points each
    keys = np.arange(1, len(x) + 1, dtype=np.int64)
    import faiss

    ivfpq = faiss.IndexIVFPQ(faiss.IndexFlatIP(16), 16, 2, 4, 4, faiss.METRIC_INNER_PRODUCT)  # as versions before
    ivfpq.train(x)  # the compressed plan (IVF codes re-ranked on a float16 store) were published
    ivfpq.add_with_ids(x, keys)
    version = _version(tmp_path / "v1", IndexPlan("ivfpq", {"nprobe": 2}), x, keys, ivfpq)
    assert exact_among(version.index("image"), x[0], keys[:5], 3) is None  # codes only: nothing to reconstruct
    store = open_store(f"sqlite:///{tmp_path / 'shoplens.db'}", migrate=True)
    with store.session() as s:
        for key in keys[:5]:
            s.add(Product(id=str(key), key=int(key), title="t"))
        s.flush()
        for key in keys[:5]:
            s.add(Embedding(product_id=str(key), model="m", kind="image", source_hash="h", **pack_vector(x[key - 1])))
            s.add(Embedding(product_id=str(key), model="older", kind="image", source_hash="h",
                            vector=np.zeros(16, np.float32).tobytes(), dtype="float32"))
    state = IndexState(version, ProductTable.from_cards([facts(int(k)) for k in keys[:5]]), store)
    found = stored_vectors(state, "image", [1, 3, 99])  # 99: no such product
    assert sorted(found) == [1, 3]
    np.testing.assert_allclose(found[3], x[2], atol=1e-3)  # this version's model's vector, not the older one
    assert similarities(state, "image", x[0], [1, 2]) == pytest.approx({1: 1.0, 2: float(x[1] @ x[0])}, abs=2e-3)
    assert stored_vectors(state, "text", [1]) == {}  # a kind this version does not hold
