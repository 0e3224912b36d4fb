"""The store on SQLite and (with SHOPLENS_TEST_PG_URL) PostgreSQL: migrations, refusal of an unmigrated database,
round trips of what the indexer writes, and the index_versions bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import column, inspect, select, table
from sqlalchemy.exc import IntegrityError

from indexer.errors import ConfigError
from indexer.publish import record_version
from indexer.store import (Embedding, ImageText, IndexVersion, Product, alembic_config, make_engine, open_store,
                           pack_vector, unpack_vector, upgrade)

TABLES = {"products", "product_images", "embeddings", "ingest_runs", "row_outcomes", "index_versions",
          "copy_versions", "eval_runs", "image_texts"}


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
        s.add(Embedding(product_id="p1", model="m", kind="image", source_hash="h", **pack_vector(vec)))
    with store.session() as s:
        p = s.get(Product, "p1")
        assert p.attributes == {"Fabric": "Coton bio", "Größe": "M"} and p.status == "active"
        stored = s.execute(select(Embedding.vector, Embedding.dtype).where(Embedding.product_id == "p1")).one()
        assert len(stored.vector) == 2 * len(vec)  # float16: half the bytes
        assert np.allclose(unpack_vector(stored.vector, stored.dtype), vec, atol=1e-3)
    with pytest.raises(IntegrityError):  # keys are unique: they are the FAISS ids
        with store.session() as s:
            s.add(Product(id="p2", key=1, title="Clash"))
    store.engine.dispose()


def test_migration_converts_float32_vectors_to_float16_and_back(db_url):
    from alembic import command

    make_engine(db_url).dispose()
    command.upgrade(alembic_config(db_url), "0002")
    vecs = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    engine = make_engine(db_url)
    old = table("embeddings", *(column(c) for c in ("product_id", "model", "kind", "source_hash", "vector")))
    with engine.begin() as conn:  # rows as the float32 schema wrote them
        conn.exec_driver_sql("INSERT INTO products (id, key, title, attributes, status, created_at, updated_at) "
                             "VALUES ('p1', 1, 't', '{}', 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
        conn.execute(old.insert(), [{"product_id": "p1", "model": "m", "kind": kind, "source_hash": "h",
                                     "vector": vec.tobytes()} for kind, vec in zip(("image", "text", "fused"), vecs)])
    engine.dispose()
    upgrade(db_url)
    store = open_store(db_url)
    with store.session() as s:
        rows = {r.kind: r for r in s.execute(select(Embedding.kind, Embedding.vector, Embedding.dtype))}
    assert {r.dtype for r in rows.values()} == {"float16"}
    for kind, vec in zip(("image", "text", "fused"), vecs):
        assert len(rows[kind].vector) == 2 * 64 and np.allclose(unpack_vector(rows[kind].vector, "float16"), vec,
                                                                  atol=2e-3)
    store.engine.dispose()
    command.downgrade(alembic_config(db_url), "0002")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        back = dict(conn.exec_driver_sql("SELECT kind, vector FROM embeddings").all())
    engine.dispose()
    assert np.allclose(np.frombuffer(back["image"], dtype=np.float32), vecs[0], atol=2e-3)


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


def test_image_text_round_trips_lines_with_diacritics(db_url):  # noqa: F811
    store = open_store(db_url, migrate=True)
    lines = [{"text": "MELLANMJÖLK", "confidence": 0.91, "box": [[1, 2], [40, 2], [40, 9], [1, 9]]}]
    with store.session() as s:
        s.add(ImageText(sha256="a" * 64, reader="r1", outcome="read", lines=lines, seconds=0.4))
        s.add(ImageText(sha256="b" * 64, reader="r1", outcome="failed", reason="image is empty (0 bytes)"))
    with store.session() as s:
        assert s.get(ImageText, "a" * 64).lines == lines
        failed = s.get(ImageText, "b" * 64)
        assert (failed.outcome, failed.reason, failed.lines) == ("failed", "image is empty (0 bytes)", [])
    store.engine.dispose()
