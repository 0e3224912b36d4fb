"""Scale on the real test index: a compressed plan's recall on real Myntra vectors, and a compressed version
published through the real path and served by the engine like the exact one."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from sqlalchemy import select

from indexer.config import load_settings
from indexer.model.encoder import load_version_encoder
from indexer.publish import publish_from_store
from indexer.store import Embedding, open_store, unpack_vector
from indexer.vectors import build_index, choose_index_type, current_version, read_manifest, recall_at_k


def _real_vectors(home, kind: str) -> np.ndarray:
    settings = load_settings(home=home)
    model = read_manifest(settings.index_dir, current_version(settings.index_dir))["model"]
    store = open_store(settings.db_url)
    with store.session() as s:
        rows = s.execute(select(Embedding.vector, Embedding.dtype).where(Embedding.kind == kind,
                                                                         Embedding.model == model)).all()
    store.engine.dispose()
    return np.stack([unpack_vector(v, d) for v, d in rows])


@pytest.mark.parametrize("kind", ["image", "text"])
def test_compressed_plan_keeps_recall_on_real_myntra_vectors(real_home, kind):
    """20,000 convex mixes of two real vectors (as bench/scale.py simulates a catalog), under a budget that
    rules out HNSW: the 512-d SQ8 plan re-ranked on float16 finds >= 0.95 of the exact top 10."""
    base = _real_vectors(real_home, kind)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(base), (2, 20_000))
    w = rng.uniform(0.55, 0.95, (20_000, 1)).astype(np.float32)
    x = w * base[a] + (1 - w) * base[b]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    plan = choose_index_type(len(x), x.shape[1], 300 << 20, shares=3)
    assert plan.type == "ivf" and plan.params["dim"] < x.shape[1]
    keys = np.arange(len(x), dtype=np.int64) + 1
    assert recall_at_k(build_index(x, keys, plan), x, keys, n_queries=300) >= 0.95


@pytest.fixture(scope="module")
def compressed_home(real_home, tmp_path_factory):
    """A copy of the real test index whose current version is compressed (a small budget), the exact one kept."""
    home = tmp_path_factory.mktemp("compressed") / "home"
    shutil.copytree(real_home, home)
    settings = load_settings(home=home)
    exact = current_version(settings.index_dir)
    encoder = load_version_encoder(read_manifest(settings.index_dir, exact), cache_dir=settings.model_cache_dir)
    store = open_store(settings.db_url)
    name, manifest, published = publish_from_store(store, settings.index_dir, encoder, 6, force=True)
    store.engine.dispose()
    assert published
    return home, exact, manifest


def test_engine_serves_a_compressed_version_like_the_exact_one(compressed_home):
    from search.engine import SearchEngine
    from search.filters import Filters
    from search.query import Query

    home, exact_name, manifest = compressed_home
    assert {spec["type"] for spec in manifest["kinds"].values()} == {"ivf"}
    assert all(spec["recall_at_10_vs_exact"] >= 0.95 for spec in manifest["kinds"].values())
    assert (home / "index" / manifest["name"] / "facts" / "keys.npy").is_file()
    engine = SearchEngine(load_settings(home=home))
    exact = read_manifest(home / "index", exact_name)
    queries = ["blue denim jeans", "black analog watch", "women handbag", "white sneakers"]
    compressed = [engine.search(Query(text=q, k=5, mode="fused")) for q in queries]
    assert all(r.index_version == manifest["name"] and r.hits for r in compressed)
    assert all(r.facets["brand"] for r in compressed)
    narrowed = engine.search(Query(text="shirt", k=5, filters=Filters.parse([("gender", "Men")])))
    assert narrowed.hits and all(h.product.gender == "Men" for h in narrowed.hits)
    (home / "index" / "CURRENT").write_text(exact["name"] + "\n")  # the exact version, same products
    by_exact = [engine.search(Query(text=q, k=5, mode="fused")) for q in queries]
    for c, e in zip(compressed, by_exact):
        assert c.hits[0].product.id == e.hits[0].product.id
        assert c.hits[0].score == pytest.approx(e.hits[0].score, abs=2e-3)  # exact cosines on float16
