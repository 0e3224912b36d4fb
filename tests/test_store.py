"""The store on SQLite and (with SHOPLENS_TEST_PG_URL) PostgreSQL: migrations, refusal of an unmigrated database,
round trips of what the indexer writes, and the index_versions bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from indexer.errors import ConfigError
from indexer.publish import record_version
from indexer.store import Embedding, IndexVersion, Product, make_engine, open_store, upgrade

TABLES = {"products", "product_images", "embeddings", "ingest_runs", "row_outcomes", "index_versions",
          "copy_versions", "eval_runs"}


def test_unmigrated_database_is_refused_then_upgrade_creates_everything(db_url):
    with pytest.raises(ConfigError, match="revision none"):
        open_store(db_url)
    upgrade(db_url)
    engine = make_engine(db_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
    open_store(db_url).engine.dispose()


def test_products_and_vectors_round_trip(db_url):
    store = open_store(db_url, migrate=True)
    vec = np.linspace(-1, 1, 384, dtype=np.float32)
    with store.session() as s:
        s.add(Product(id="p1", key=1, title="Café shirt", attributes={"Fabric": "Coton bio", "Größe": "M"},
                      price=1299.5))
        s.flush()
        s.add(Embedding(product_id="p1", model="m", kind="image", source_hash="h", vector=vec.tobytes()))
    with store.session() as s:
        p = s.get(Product, "p1")
        assert p.attributes == {"Fabric": "Coton bio", "Größe": "M"} and p.status == "active"
        stored = s.scalar(select(Embedding.vector).where(Embedding.product_id == "p1"))
        assert np.array_equal(np.frombuffer(stored, dtype=np.float32), vec)
    with pytest.raises(IntegrityError):  # keys are unique: they are the FAISS ids
        with store.session() as s:
            s.add(Product(id="p2", key=1, title="Clash"))
    store.engine.dispose()


def _manifest(name: str) -> dict:
    kinds = {k: {"file": f"{k}.faiss", "type": "flat", "recall_at_10_vs_exact": 1.0} for k in ("image", "text", "fused")}
    return {"name": name, "model": "m", "dim": 8, "count": 3, "kinds": kinds, "plan": "test", "seconds": 0.1}


def test_index_versions_are_recorded_once_and_only_one_is_published(db_url):
    store = open_store(db_url, migrate=True)
    for name in ("v000001", "v000001", "v000002"):
        with store.session() as s:
            record_version(s, _manifest(name))
    with store.session() as s:
        rows = {v.name: v.status for v in s.scalars(select(IndexVersion))}
        assert rows == {"v000001": "retired", "v000002": "published"}
        assert s.scalar(select(IndexVersion.params).where(IndexVersion.name == "v000002"))["kinds"]["fused"][
            "recall_at_10_vs_exact"] == 1.0
    store.engine.dispose()
