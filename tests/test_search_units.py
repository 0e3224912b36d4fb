"""Pure building blocks of search and the API: fusion, filters, negative queries, collapse, rate limit, params."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.config import load_settings
from indexer.errors import BadInput, ConfigError
from indexer.config import UNCALIBRATED_FLOORS, SearchSettings, parse_hybrid
from search.dedupe import collapse
from search.filters import Filters, category_matches
from search.fusion import blend, fuse, rrf
from search.products import ProductFacts, ProductTable
from search.query import Hit, split_negative
from web.openapi import Param
from web.ratelimit import TokenBuckets


def facts(key: int, title: str = "t", *, brand=None, category=None, colour=None, gender=None, price=None,
          image_hash=None) -> ProductFacts:
    return ProductFacts(key=key, id=str(key), title=title, brand=brand, category=category, colour=colour,
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
    table = ProductTable([
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
    hits = [Hit(facts(1, "Red Tee", image_hash="h1"), 0.9), Hit(facts(2, "Blue Tee", image_hash="h1"), 0.8),
            Hit(facts(3, "red  tee", image_hash="h3"), 0.7), Hit(facts(4, "Red Tee", image_hash="h4"), 0.6)]
    vectors = {1: a, 3: b, 4: c}
    kept = collapse(hits, vectors=lambda keys: {k: vectors[k] for k in keys if k in vectors}, threshold=0.97)
    assert [h.product.key for h in kept] == [1, 4]  # 2: same bytes as 1; 3: same title, near-identical photo
    assert kept[0].duplicates == ["2", "3"]


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


def test_a_narrow_filter_on_a_graph_index_is_searched_exactly():
    import faiss

    from search.engine import _exact_among

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5_000, 32)).astype(np.float32)
    faiss.normalize_L2(x)
    keys = np.arange(len(x), dtype=np.int64) * 3 + 1
    graph = faiss.IndexIDMap2(faiss.IndexHNSWFlat(32, 8, faiss.METRIC_INNER_PRODUCT))
    graph.add_with_ids(x, keys)
    allowed = keys[::250]  # 20 products pass the filter
    query = x[7]
    found = _exact_among(graph, query, allowed, 10)
    expected = sorted(((int(k), float(x[(k - 1) // 3] @ query)) for k in allowed), key=lambda kv: -kv[1])[:10]
    assert [k for k, _ in found] == [k for k, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5)
    # An index that keeps no reconstructable vectors leaves the search to the caller's filtered index search.
    quantizer = faiss.IndexFlatIP(32)
    ivf = faiss.IndexIDMap2(faiss.IndexIVFFlat(quantizer, 32, 4, faiss.METRIC_INNER_PRODUCT))
    ivf.train(x)
    ivf.add_with_ids(x, keys)
    assert _exact_among(ivf, query, allowed, 10) is None
