"""The product store: SQLAlchemy 2 models and sessions.

The schema is owned by Alembic (`migrations/`); `open_store` refuses a database that is not at the head
revision, so a stale or empty database fails with one clear line instead of a SQL error later.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from indexer.errors import ConfigError


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# How vectors are stored: float16 halves the table (a million products x three 1,920-d vectors: 11.5 GB instead of
# 23 GB) and keeps cosines within ~1e-3 of float32, well under the gaps ranking depends on; what search re-ranks
# with is the same float16 (a memory-mapped copy per index version, `indexer.vectors`).
VECTOR_DTYPE = "float16"


def pack_vector(vector: np.ndarray) -> dict:
    """The `vector` and `dtype` columns of an Embedding row for one vector."""
    return {"vector": np.asarray(vector, dtype=VECTOR_DTYPE).tobytes(), "dtype": VECTOR_DTYPE}


def unpack_vector(blob: bytes, dtype: str | None) -> np.ndarray:
    """A stored vector as float32, whichever dtype it was stored in (rows from before revision 0003: float32)."""
    return np.frombuffer(blob, dtype=dtype or "float32").astype(np.float32)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Product(Base):
    """One catalog product; `status` is 'active' or 'deleted' (pruned), never hard-deleted by the indexer."""

    __tablename__ = "products"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Stable integer surrogate of `id`, assigned once at first insert: the FAISS id of this product's vectors.
    key: Mapped[int] = mapped_column(Integer, unique=True, index=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    brand: Mapped[str | None] = mapped_column(String(256), index=True)
    category: Mapped[str | None] = mapped_column(String(512), index=True)  # "A > B > C"
    colour: Mapped[str | None] = mapped_column(String(128), index=True)
    gender: Mapped[str | None] = mapped_column(String(64), index=True)
    price: Mapped[float | None] = mapped_column(Float, index=True)
    currency: Mapped[str | None] = mapped_column(String(8))
    image_ref: Mapped[str | None] = mapped_column(Text)  # as resolved at ingestion: path or ARCHIVE.zip#MEMBER
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    text_hash: Mapped[str | None] = mapped_column(String(64))  # hash of what the text vector is built from
    image_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the image bytes
    meta_hash: Mapped[str | None] = mapped_column(String(64))  # hash of every field, for metadata-only updates
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ProductImage(Base):
    """Facts about a product's image bytes, checked before decoding."""

    __tablename__ = "product_images"
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    ref: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    n_bytes: Mapped[int] = mapped_column(Integer)


class ImageText(Base):
    """The words printed on an image, keyed by the sha256 of its bytes: an image is read once, whichever products
    share it, and read again only when its bytes (or the reader, `reader`) change. `outcome` is 'read', 'no_text'
    or 'failed' (with `reason`); `lines` is [{"text", "confidence", "box": [[x, y] x 4]}]."""

    __tablename__ = "image_texts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    reader: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list] = mapped_column(JSON, default=list)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """A product's vector of one kind ('image', 'text', 'fused') under one model: `dtype` bytes (float16 since
    revision 0003, which converted the float32 rows; `pack_vector` / `unpack_vector` read and write both)."""

    __tablename__ = "embeddings"
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    source_hash: Mapped[str] = mapped_column(String(64))  # text_hash or image_hash it was computed from
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    dtype: Mapped[str] = mapped_column(String(8), default=VECTOR_DTYPE, server_default="float32")


class IngestRun(Base):
    """One `shoplens index` run and its totals."""

    __tablename__ = "ingest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    catalog: Mapped[str] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)


class RowOutcome(Base):
    """What happened to one catalog row in one run: indexed, updated, unchanged, rejected or pruned."""

    __tablename__ = "row_outcomes"
    __table_args__ = (Index("ix_row_outcomes_run_outcome", "run_id", "outcome"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id", ondelete="CASCADE"))
    row_number: Mapped[int | None] = mapped_column(Integer)
    product_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)


class IndexVersion(Base):
    """A published (or building) FAISS index version; files live under `<home>/index/<name>/`."""

    __tablename__ = "index_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(256))
    index_type: Mapped[str] = mapped_column(String(64))
    vectors: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # build params, recall vs exact, timings
    status: Mapped[str] = mapped_column(String(16), default="building")  # building | published | retired
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CopyVersion(Base):
    """One generated (or edited) description of a product; the source description is never overwritten."""

    __tablename__ = "copy_versions"
    __table_args__ = (UniqueConstraint("product_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    bullets: Mapped[list] = mapped_column(JSON, default=list)
    seo_title: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(256))
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    unsupported_claims: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | approved | discarded
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str | None] = mapped_column(String(256))
    parent_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalRun(Base):
    """One `shoplens eval` run: its configuration, the index version it ran on, and its metrics."""

    __tablename__ = "eval_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(256))
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    index_version: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    report_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(db_url: str) -> Engine:
    """An engine for `db_url`; SQLite gets WAL so the server reads while the indexer writes."""
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(db_url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db_url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str) -> None:
    """Bring the database to the head revision (`alembic upgrade head`)."""
    from alembic import command

    make_engine(db_url).dispose()  # creates the SQLite folder
    command.upgrade(alembic_config(db_url), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db_url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()


def upsert(session: Session, model: type[Base], rows: list[dict]) -> None:
    """Insert `rows` into `model`'s table, overwriting the rows whose primary key exists, in one statement.

    One statement per batch instead of `session.merge` per row (a SELECT and a flush each): the indexer writes
    four rows per product, on the thread that also runs the encoder."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        for row in rows:
            session.merge(model(**row))
        return
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    table = model.__table__
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(table)
    keys = [c.name for c in table.primary_key]
    stmt = stmt.on_conflict_do_update(index_elements=keys,
                                      set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})
    session.execute(stmt, rows)


class Store:
    """An engine plus a session factory for a migrated database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


def open_store(db_url: str, *, migrate: bool = False) -> Store:
    """Open the store; with `migrate`, upgrade it first, else refuse an unmigrated database."""
    if migrate:
        upgrade(db_url)
    engine = make_engine(db_url)
    try:
        current = current_revision(engine)
    except Exception as exc:  # unreachable server, bad URL
        raise ConfigError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: {exc}") from exc
    head = head_revision(db_url)
    if current != head:
        engine.dispose()
        raise ConfigError(
            f"database is at revision {current or 'none'} but this ShopLens needs {head}",
            hint="run `shoplens migrate` (or `alembic upgrade head`) first.",
        )
    return Store(engine)
