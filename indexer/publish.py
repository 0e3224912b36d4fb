"""Index versions from the database: build the FAISS indexes and the lexical index of every active product, measure
the version's score floors, and publish it atomically (`indexer.vectors.publish_version`).

A version's fingerprint covers the vectors' sources, the product texts and the approved copy, so publishing is a
no-op when nothing a search reads has changed. `shoplens index`, `shoplens publish-copy` and later features (model
adaptation) all publish through `publish_from_store`, under the home's run lock.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from indexer.calibration import MULTILINGUAL_FLOOR_PERCENTILE, nonsense_centroid, nonsense_queries, score_floors
from indexer.config import MULTILINGUAL_KIND, VECTOR_KINDS, Settings
from indexer.errors import NoIndex
from indexer.facts import FACTS, read_facts
from indexer.lexical import build_lexical, product_document
from indexer.locking import run_lock
from indexer.multilingual import embed_products, multilingual_matrix
from indexer.reading.stored import printed_lines
from indexer.store import CopyVersion, Embedding, ImageText, IndexVersion, Product, Store, open_store, unpack_vector
from indexer.vectors import (CompressedIndex, IndexPlan, build_index, choose_index_type, current_version,
                             publish_version, read_manifest, recall_at_k, write_index)

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder
    from indexer.model.multilingual import MultilingualEncoder

log = logging.getLogger(__name__)
STREAM_ROWS = 10_000  # vectors read from the database a batch at a time


def _fingerprint(session: Session, model: str) -> str:
    """What the published version was built from: active products' hashes, the model, approved copy and the
    printed text read on their images (reading them later changes the lexical index)."""
    digest = hashlib.sha256(model.encode())
    for key, text_hash, image_hash, reader, outcome in session.execute(
            select(Product.key, Product.text_hash, Product.image_hash, ImageText.reader, ImageText.outcome)
            .outerjoin(ImageText, ImageText.sha256 == Product.image_hash).where(Product.status == "active")
            .order_by(Product.key)):
        digest.update(f"{key}:{text_hash}:{image_hash}:{reader}:{outcome};".encode())
    for cid, in session.execute(select(CopyVersion.id).where(CopyVersion.status == "approved")
                                .order_by(CopyVersion.id)):
        digest.update(f"c{cid};".encode())
    return digest.hexdigest()


def _indexed_keys(session: Session, model: str) -> np.ndarray:
    """Keys (ascending) of the active products that have every kind of vector under `model`."""
    keys = np.fromiter(session.scalars(
        select(Product.key).join(Embedding, Embedding.product_id == Product.id)
        .where(Product.status == "active", Embedding.model == model, Embedding.kind.in_(VECTOR_KINDS))
        .group_by(Product.key).having(func.count() == len(VECTOR_KINDS)).order_by(Product.key)), dtype=np.int64)
    missing = session.scalar(select(func.count()).select_from(Product).where(Product.status == "active")) - len(keys)
    if missing:
        log.warning("%d active products have no vectors for model %s (their rows were rejected this run); "
                    "they are left out of the index", missing, model)
    return keys


def _stream_vectors(session: Session, model: str, kind: str, keys: np.ndarray, dim: int, path: Path) -> np.ndarray:
    """One kind's vectors in `keys` order, written as float16 into a memory-mapped `.npy` at `path` while they
    are read (a million products' vectors never sit in memory as rows or float32)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(len(keys), dim))
    rows = session.execute(
        select(Product.key, Embedding.vector, Embedding.dtype).join(Embedding, Embedding.product_id == Product.id)
        .where(Product.status == "active", Embedding.model == model, Embedding.kind == kind)
        .order_by(Product.key).execution_options(yield_per=STREAM_ROWS))
    for batch in rows.partitions():
        at = np.searchsorted(keys, np.fromiter((r.key for r in batch), dtype=np.int64, count=len(batch)))
        at = np.minimum(at, max(len(keys) - 1, 0))
        for pos, (key, blob, dtype) in zip(at, batch):
            if len(keys) and keys[pos] == key:
                out[pos] = unpack_vector(blob, dtype)
    out.flush()
    return out


def _lexical_documents(session: Session) -> tuple[list[int], list[str]]:
    approved: dict[str, list[str]] = {}
    for pid, text in session.execute(select(CopyVersion.product_id, CopyVersion.text)
                                     .where(CopyVersion.status == "approved").order_by(CopyVersion.version)):
        approved.setdefault(pid, []).append(text)
    products = list(session.scalars(select(Product).where(Product.status == "active").order_by(Product.key)))
    printed = printed_lines(session, (p.image_hash for p in products))
    keys, docs = [], []
    for p in products:
        keys.append(p.key)
        docs.append(product_document(p.title, p.brand, p.category, p.colour, p.attributes, p.description,
                                     approved.get(p.id, ()), printed.get(p.image_hash, ())))
    return keys, docs


def record_version(session: Session, manifest: dict) -> None:
    """Mirror a published manifest into index_versions (idempotent: a kill between publish and here heals)."""
    fused = manifest["kinds"]["fused"]
    row = session.scalar(select(IndexVersion).where(IndexVersion.name == manifest["name"]))
    if row is None:
        row = IndexVersion(name=manifest["name"], model=manifest["model"], index_type=fused["type"],
                           vectors=manifest["count"], dim=manifest["dim"],
                           params={"kinds": manifest["kinds"], "plan": manifest.get("plan"),
                                   "seconds": manifest.get("seconds")})
        session.add(row)
    session.execute(update(IndexVersion).where(IndexVersion.name != manifest["name"],
                                               IndexVersion.status == "published").values(status="retired"))
    row.status = "published"


def publish_from_store(store: Store, index_dir: Path, encoder: Encoder, memory_budget_mb: int,
                       *, force: bool = False, multilingual: MultilingualEncoder | None = None,
                       progress: bool = False) -> tuple[str, dict, bool]:
    """Build and publish a version of `encoder`'s vectors (and of `multilingual`'s product-text vectors, brought up
    to date first: `indexer.multilingual`) from the database unless the current one was built from the same
    content (and has its score floors); returns (name, manifest, published)."""
    model, dim = encoder.name, encoder.dim
    with store.session() as s:
        base = _fingerprint(s, model)
        name = current_version(index_dir)
        if name and not force:
            manifest = read_manifest(index_dir, name)
            if manifest.get("fingerprint") == _with_model(base, multilingual) and "score_floors" in manifest:
                record_version(s, manifest)
                return name, manifest, False
    if multilingual is not None:
        embed_products(store, multilingual, progress=progress)
    with store.session() as s:
        keys = _indexed_keys(s, model)
        lex_keys, documents = _lexical_documents(s)
    extra = multilingual_matrix(store, multilingual, keys) if multilingual is not None else None
    fingerprint = _with_model(base, multilingual if extra is not None else None)  # what this version holds

    def write(staging: Path) -> dict:
        started = time.monotonic()
        np.save(staging / "keys.npy", keys)
        shares = len(VECTOR_KINDS) + (extra is not None)  # the budget is for every kind the version holds
        kinds, indexes = {}, {}
        for kind in VECTOR_KINDS:
            plan = choose_index_type(len(keys), dim, memory_budget_mb << 20, shares=shares)
            with store.session() as s:
                vectors = _stream_vectors(s, model, kind, keys, dim, staging / f"{kind}.f16.npy")
            kinds[kind], indexes[kind] = _write_kind(staging, kind, vectors, keys, plan)
            if plan.type != "ivf":  # these keep the vectors themselves
                del vectors
                (staging / f"{kind}.f16.npy").unlink()
        floors = score_floors(encoder.encode_texts(nonsense_queries()), indexes)
        if extra is not None:  # its own dimension, so its own index choice
            own = choose_index_type(len(keys), multilingual.dim, memory_budget_mb << 20, shares=shares)
            kinds[MULTILINGUAL_KIND], index = _write_kind(staging, MULTILINGUAL_KIND, extra, keys, own)
            calibration = multilingual.encode_queries(nonsense_queries())
            kinds[MULTILINGUAL_KIND].update(model=multilingual.name, dim=multilingual.dim,
                                            nonsense_centroid=nonsense_centroid(calibration))
            floors.update(score_floors(calibration, {MULTILINGUAL_KIND: index},
                                       percentile=MULTILINGUAL_FLOOR_PERCENTILE))
        lexical = build_lexical(lex_keys, documents, staging / "lexical")
        with store.session() as s:
            read_facts(s).save(staging / FACTS)
        return {"model": model, "dim": dim, "count": int(len(keys)), "keys": "keys.npy", "kinds": kinds,
                "lexical": "lexical/", "facts": f"{FACTS}/", "score_floors": floors,
                "lexical_documents": lexical["documents"], "plan": kinds["fused"]["plan"], "fingerprint": fingerprint,
                "seconds": round(time.monotonic() - started, 2)}

    name, manifest = publish_version(index_dir, write)
    with store.session() as s:
        record_version(s, manifest)
    return name, manifest, True


def _with_model(fingerprint: str, multilingual: MultilingualEncoder | None) -> str:
    """A version's fingerprint: its content's, plus the multilingual model whose vectors it holds (a version
    without them is re-published once they are wanted)."""
    return fingerprint if multilingual is None else hashlib.sha256(f"{fingerprint}+{multilingual.name}".encode()) \
        .hexdigest()


def _write_kind(staging: Path, kind: str, vectors: np.ndarray, keys: np.ndarray,
                plan: IndexPlan) -> tuple[dict, faiss.Index | CompressedIndex]:
    """One kind's index files in `staging`; (its manifest entry, the index). `vectors` may be a float16 memory map
    (a compressed index keeps it as its re-rank store)."""
    if plan.type == "ivf":
        index = build_index(vectors, keys, plan)
        files, truth = index.save(staging, kind), vectors
    else:
        truth = np.asarray(vectors, dtype=np.float32)
        index = build_index(truth, keys, plan)
        write_index(index, staging / f"{kind}.faiss")
        files = {"file": f"{kind}.faiss"}
    # An exact index is its own ground truth; approximate ones are measured against exact search.
    recall = 1.0 if plan.type == "flat" else round(recall_at_k(index, truth, keys), 4)
    log.info("%s vectors: %s index, recall@10 %.4f vs exact", kind, plan.type, recall)
    return {**files, "type": plan.type, "params": plan.params, "recall_at_10_vs_exact": recall, "plan": plan.reason,
            "memory_bytes": plan.memory_bytes}, index


def republish(settings: Settings) -> tuple[str, bool]:
    """(version name, whether a new version was published) after re-reading what a version is built from in the
    database, with the current version's own model: how approved copy, and later facts that change without a
    catalog run, reach search."""
    from indexer.model.encoder import load_version_encoder

    name = current_version(settings.index_dir)
    if name is None:
        raise NoIndex("no index version is published yet", hint="Run `shoplens index CATALOG` first.")
    manifest = read_manifest(settings.index_dir, name)
    with run_lock(settings.home):
        store = open_store(settings.db_url)
        encoder = load_version_encoder(manifest, cache_dir=settings.model_cache_dir,
                                       runtime=settings.inference)
        name, _, published = publish_from_store(store, settings.index_dir, encoder, settings.index_memory_budget_mb,
                                                multilingual=multilingual_encoder(settings))
    return name, published


def multilingual_encoder(settings: Settings) -> MultilingualEncoder | None:
    """The multilingual model a publish of this home adds the vectors of, or None when the setting is off."""
    if not settings.multilingual:
        return None
    from indexer.model.multilingual import load_multilingual

    return load_multilingual(cache_dir=settings.model_cache_dir, runtime=settings.inference)
