"""Incremental, resumable indexing: catalog rows → products + embeddings in the database (the vectors a version
is built from; `indexer.publish` builds the version).

Why it is safe to kill at any moment: each batch of rows (products, images, embeddings, row outcomes) commits in
one transaction, and a product is "done" exactly when its stored hashes match the catalog and its vectors exist.
A rerun therefore skips what was committed and redoes the rest; the FAISS indexes are rebuilt from the database at
the end and published atomically (vectors.publish_version), so index count == active products.

Why it is fast: image reading, hashing, decoding and preprocessing run in a thread pool a few batches ahead of the
encoder (PIL and torch release the GIL), and only new or changed content is re-encoded: text by the hash of the
text the vector is built from, images by the sha256 of their bytes. A metadata-only change (price, a field that
is not in the text) updates the row and keeps its vectors.

Rows whose image is missing or unusable are rejected with the reason (not indexed text-only): every active
product has all three vectors, so each kind's index holds the same products.

Where the vectors are made is the executor's business: `RowWork` is the per-row work (read, hash, decode,
preprocess, read printed text, encode what changed), `LocalExecutor` runs it in this process a few batches ahead
of the writer, `indexer.distributed.RayExecutor` runs the same `RowWork` in Ray Data actors. Either way the batches,
what needs encoding, the writes and the row outcomes are this module's, so the two ways cannot drift apart.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol, Sequence

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from indexer.catalog import CatalogRow, RowError, parse_mapping, read_catalog, sha256_text
from indexer.config import Settings
from indexer.errors import BadImage
from indexer.images import ImageInfo, ImageResolver, decode_image
from indexer.product import STORED_FIELDS
from indexer.reading import READER_VERSION, Reading, load_reader
from indexer.reading.policy import AUTO_SAMPLE, auto_reads, has_words, spread
from indexer.store import (Embedding, ImageText, IngestRun, Product, ProductImage, RowOutcome, Store, pack_vector,
                           unpack_vector, upsert, utcnow)
from indexer.vectors import fuse_vectors

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

log = logging.getLogger(__name__)

PREFETCH_BATCHES = 3  # batches being read/decoded ahead of the encoder


@dataclass
class IndexOptions:
    """What `shoplens index` was asked to do."""

    catalog: Path
    images_root: Path | None = None
    mapping: Sequence[str] = ()
    model_spec: str | None = None
    prune: bool = False
    progress: bool = True
    ray: str | None = None  # a Ray address (local | auto | ray://HOST:PORT): encode on that cluster


@dataclass
class RunSummary:
    """Totals of one run, printed at the end and stored in ingest_runs.counts."""

    run_id: int
    indexed: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    pruned: int = 0
    seconds: float = 0.0
    version: str | None = None
    published: bool = False
    vectors: int = 0
    index_type: str | None = None
    reading: str = "off"  # whether this run read printed text: on, off, or auto's decision ("auto: on")
    texts: dict = field(default_factory=dict)  # readings made this run per outcome (read / no_text / failed)

    def counts(self) -> dict:
        return {**{k: getattr(self, k) for k in ("indexed", "updated", "unchanged", "rejected", "pruned")},
                "read_text": {"mode": self.reading, **self.texts}}

    def line(self) -> str:
        index = (f"published {self.version}" if self.published else f"index unchanged ({self.version})")
        return (f"indexed {self.indexed}, updated {self.updated}, unchanged {self.unchanged}, rejected "
                f"{self.rejected}, pruned {self.pruned} in {self.seconds:.1f}s; {index}: {self.vectors} vectors "
                f"({self.index_type}); read text: {self.reading}" +
                (f" ({', '.join(f'{n} {k}' for k, n in sorted(self.texts.items()))})" if self.texts else ""))


@dataclass
class Prepared:
    """A row after the worker read its image: hash, and a preprocessed tensor when the image must be encoded."""

    row: CatalogRow
    image_ref: str | None = None
    image_hash: str | None = None
    info: ImageInfo | None = None
    tensor: object = None
    error: str | None = None
    reading: Reading | None = None  # the printed text, when this image had to be read


@dataclass
class Batch:
    """Catalog rows to write in one transaction, and the source hashes of their stored vectors."""

    rows: list[CatalogRow]
    errors: list[RowError]
    hashes: dict[tuple[str, str], str]  # (product id, kind) → source hash of the stored vector


@dataclass
class Encoded:
    """What an executor made of a batch: every row prepared (tensor dropped), vectors for what changed."""

    prepared: list[Prepared]
    image_vecs: dict[str, np.ndarray]
    text_vecs: dict[str, np.ndarray]


@dataclass(frozen=True)
class WorkSpec:
    """Everything a process needs to do a row's work as this run does it (picklable, sent to Ray actors)."""

    model_spec: str
    model_name: str  # the driver's encoder.name: a worker that loads another model refuses to start
    cache_dir: Path
    runtime: str
    roots: tuple[Path, ...]
    max_bytes: int
    max_pixels: int
    reading: bool = False
    read_hashes: frozenset[str] = frozenset()  # images this reader version has read: never read twice


class RowWork:
    """The per-row work of a run, wherever it runs: read and hash the image, decode and preprocess it when its
    bytes changed, read its printed words when asked, and encode what changed."""

    def __init__(self, spec: WorkSpec, encoder: "Encoder") -> None:
        self.spec = spec
        self.encoder = encoder
        self.resolver = ImageResolver(list(spec.roots), max_bytes=spec.max_bytes)
        self.reading = spec.reading
        self.read_hashes: set[str] = set(spec.read_hashes)

    def prepare(self, row: CatalogRow, known_image_hash: str | None) -> Prepared:
        """Read and hash the image; decode it only if its bytes differ from the encoded ones (then preprocess it)
        or if its printed text is to be read and this reader has not read these bytes yet."""
        try:
            data, ref = self.resolver.read(row.image or "")
            digest = hashlib.sha256(data).hexdigest()
            encode = digest != known_image_hash
            read = self.reading and digest not in self.read_hashes
            if not (encode or read):
                return Prepared(row, ref, digest)
            image, info = decode_image(data, max_pixels=self.spec.max_pixels, what=f"image {row.image}")
            prepared = Prepared(row, ref, digest, info, self.encoder.preprocess(image) if encode else None)
        except BadImage as exc:
            return Prepared(row, error=str(exc))
        if read:
            self.read_hashes.add(digest)  # a second product with the same bytes reuses this reading
            prepared.reading = load_reader().read_image(image)
        return prepared

    def encode(self, prepared: list[Prepared], hashes: dict[tuple[str, str], str]) -> Encoded:
        """Image vectors for the rows whose image was preprocessed, text vectors for the rows whose text hash
        differs from the stored one; tensors are dropped (what is left travels back from a Ray actor)."""
        good = [p for p in prepared if not p.error]
        need_image = [p for p in good if p.tensor is not None]
        need_text = [p for p in good if hashes.get((p.row.id, "text")) != p.row.text_hash()]
        image_vecs: dict[str, np.ndarray] = {}
        if need_image:
            import torch

            vecs = self.encoder.encode_image_tensors(torch.stack([p.tensor for p in need_image]))
            image_vecs = dict(zip((p.row.id for p in need_image), vecs))
        text_vecs = dict(zip((p.row.id for p in need_text),
                             self.encoder.encode_texts([p.row.text() for p in need_text])))
        for p in prepared:
            p.tensor = None
        return Encoded(prepared, image_vecs, text_vecs)


class Executor(Protocol):
    """Turns batches into their vectors, in order; `indexer.distributed.RayExecutor` is the other one."""

    def run(self, work: RowWork, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Encoded]]: ...


class LocalExecutor:
    """This process: image reading and preprocessing in a thread pool `PREFETCH_BATCHES` batches ahead of the
    encoder (PIL and torch release the GIL)."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)

    def run(self, work: RowWork, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Encoded]]:
        pending: deque[tuple[Batch, list[Future]]] = deque()
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            for batch in batches:
                pending.append((batch, [pool.submit(work.prepare, row, batch.hashes.get((row.id, "image")))
                                        for row in batch.rows]))
                while len(pending) > PREFETCH_BATCHES:
                    yield self._encoded(work, *pending.popleft())
            while pending:
                yield self._encoded(work, *pending.popleft())

    @staticmethod
    def _encoded(work: RowWork, batch: Batch, futures: list[Future]) -> tuple[Batch, Encoded]:
        return batch, work.encode([f.result() for f in futures], batch.hashes)


def fused_source(image_hash: str, text_hash: str) -> str:
    return sha256_text(f"{image_hash}:{text_hash}")


def _estimate_rows(path: Path) -> int | None:
    """Rows in the catalog, for the progress bar's ETA (newlines minus the CSV header; exact without multi-line
    fields)."""
    with open(path, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return max(0, lines - (0 if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else 1))


class Indexer:
    """One run of the pipeline; see the module docstring."""

    def __init__(self, settings: Settings, options: IndexOptions, store: Store) -> None:
        from indexer.model.adapted import home_model_spec
        from indexer.model.encoder import load_encoder

        self.settings = settings
        self.options = options
        self.store = store
        self.mapping = parse_mapping(options.mapping)
        self.model_spec = options.model_spec or home_model_spec(settings)
        self.encoder = load_encoder(self.model_spec, cache_dir=settings.model_cache_dir, runtime=settings.inference)
        roots = [p for p in (options.images_root, Path(options.catalog).resolve().parent) if p]
        self.resolver = ImageResolver(roots, max_bytes=settings.max_image_bytes)
        self.seen_ids: set[str] = set()
        self.read_text = settings.read_text
        self.reading = False  # decided in ingest() (auto samples the catalog first)
        with store.session() as s:
            # Images already read by this reader version: an unchanged image is never read twice.
            self.read_hashes: set[str] = set(s.scalars(select(ImageText.sha256)
                                                       .where(ImageText.reader == READER_VERSION)))
            self.next_key = (s.scalar(select(func.max(Product.key))) or 0) + 1
            s.execute(update(IngestRun).where(IngestRun.status == "running").values(status="interrupted"))
            run = IngestRun(catalog=str(options.catalog), status="running",
                            options={"images_root": str(options.images_root or ""), "map": list(options.mapping),
                                     "model": self.encoder.name, "prune": options.prune,
                                     "read_text": self.read_text})
            s.add(run)
        self.summary = RunSummary(run_id=run.id)

    def work_spec(self) -> WorkSpec:
        """How this run's rows are worked on (after `_decide_reading`): the model, image roots, limits, reading."""
        return WorkSpec(model_spec=self.model_spec, model_name=self.encoder.name,
                        cache_dir=self.settings.model_cache_dir, runtime=self.settings.inference,
                        roots=tuple(self.resolver.roots), max_bytes=self.settings.max_image_bytes,
                        max_pixels=self.settings.max_image_pixels, reading=self.reading,
                        read_hashes=frozenset(self.read_hashes))

    def _decide_reading(self) -> None:
        """on / off as asked; auto reads the catalog if a spread sample of its images carries printed words
        (indexer.reading.policy: a second, interleaved sample where the first is not clear). Sampled images this
        reader read before are not read again."""
        if self.read_text != "auto":
            self.reading, self.summary.reading = self.read_text == "on", self.read_text
            return
        rows = [r for r in read_catalog(self.options.catalog, self.mapping) if isinstance(r, CatalogRow)]
        evidence: list[bool] = []
        decision = None
        offsets = (0.5, 0.0) if len(rows) > AUTO_SAMPLE else (0.5,)  # a small catalog is read whole at once
        for i, offset in enumerate(offsets):
            evidence += self._sample_evidence(spread(rows, offset=offset))
            decision = auto_reads(sum(evidence), len(evidence), final=i == len(offsets) - 1)
            if decision is not None:
                break
        self.reading = bool(decision)
        self.summary.reading = (f"auto: {'on' if self.reading else 'off'} ({sum(evidence)} of {len(evidence)} "
                                f"sampled images carry words)")
        log.info("read-text %s", self.summary.reading)

    def _sample_evidence(self, sample: list[CatalogRow]) -> list[bool]:
        """Whether each readable image of `sample` carries words: read now (and stored), or as read before. The
        fresh ones are read on the run's `workers` threads: nothing else runs yet, and a reading is ~1 s a core."""
        to_read: list[tuple[CatalogRow, str, str, bytes]] = []
        known: list[str] = []
        for row in sample:
            try:
                data, ref = self.resolver.read(row.image or "")
            except BadImage:
                continue  # the row is rejected, with its reason, when it is ingested
            digest = hashlib.sha256(data).hexdigest()
            if digest in self.read_hashes:
                known.append(digest)
                continue
            self.read_hashes.add(digest)
            to_read.append((row, ref, digest, data))
        reader = load_reader()
        with ThreadPoolExecutor(max_workers=max(1, self.settings.workers)) as pool:
            readings = list(pool.map(lambda item: reader.read_bytes(item[3], max_pixels=self.settings.max_image_pixels,
                                                                    what=f"image {item[1]}"), to_read))
        fresh = [Prepared(row, ref, digest, reading=reading)
                 for (row, ref, digest, _), reading in zip(to_read, readings)]
        with self.store.session() as s:
            self._write_readings(s, fresh)
            stored = list(s.execute(select(ImageText.outcome, ImageText.lines).where(ImageText.sha256.in_(known))))
        evidence = [has_words([line.text for line in p.reading.lines]) for p in fresh if p.reading.outcome != "failed"]
        return evidence + [has_words([line["text"] for line in lines]) for outcome, lines in stored
                           if outcome != "failed"]

    def _store_readings(self, prepared: list[Prepared]) -> None:
        with self.store.session() as s:
            self._write_readings(s, prepared)

    def _write_readings(self, session: Session, prepared: list[Prepared]) -> None:
        """Upsert the image_texts rows of the readings in `prepared` (in the caller's transaction)."""
        rows = {p.image_hash: {"sha256": p.image_hash, "reader": READER_VERSION, "outcome": p.reading.outcome,
                               "reason": p.reading.reason, "lines": [line.to_dict() for line in p.reading.lines],
                               "seconds": round(p.reading.seconds, 3), "read_at": utcnow()}
                for p in prepared if p.reading}
        upsert(session, ImageText, list(rows.values()))
        for r in rows.values():
            self.summary.texts[r["outcome"]] = self.summary.texts.get(r["outcome"], 0) + 1

    # -- batches -------------------------------------------------------------------------------------------
    def _start_batch(self, session: Session, items: list[CatalogRow | RowError]) -> Batch:
        rows = [r for r in items if isinstance(r, CatalogRow)]
        errors = [r for r in items if isinstance(r, RowError)]
        self.seen_ids.update(r.id for r in rows)
        self.seen_ids.update(e.product_id for e in errors if e.product_id)
        ids = [r.id for r in rows]
        hashes = {(pid, kind): h for pid, kind, h in session.execute(
            select(Embedding.product_id, Embedding.kind, Embedding.source_hash)
            .where(Embedding.product_id.in_(ids), Embedding.model == self.encoder.name))} if ids else {}
        session.rollback()  # end the read transaction: no long-lived snapshot while batches commit
        return Batch(rows, errors, hashes)

    def _batches(self) -> Iterator[Batch]:
        """The catalog in batches of `batch_size` items, each with the stored source hashes of its products."""
        size = self.settings.batch_size
        with self.store.session() as reader:
            items: list[CatalogRow | RowError] = []
            for item in read_catalog(self.options.catalog, self.mapping):
                items.append(item)
                if len(items) >= size:
                    yield self._start_batch(reader, items)
                    items = []
            if items:
                yield self._start_batch(reader, items)

    def _finish_batch(self, session: Session, batch: Batch, encoded: Encoded) -> None:
        """Write the batch and its new vectors; the caller commits it as one transaction."""
        outcomes = [{"row_number": e.row_number, "product_id": e.product_id, "outcome": "rejected",
                     "reason": e.reason} for e in batch.errors]
        good = []
        for p in encoded.prepared:
            if p.error:
                outcomes.append({"row_number": p.row.row_number, "product_id": p.row.id, "outcome": "rejected",
                                 "reason": p.error})
            else:
                good.append(p)
        image_vecs, text_vecs = encoded.image_vecs, encoded.text_vecs
        changed_ids = set(image_vecs) | set(text_vecs)
        stored = self._stored_vectors(session, changed_ids, image_vecs, text_vecs)
        ids = [p.row.id for p in good]
        products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
        images: list[dict] = []
        embeddings: list[dict] = []
        for p in good:
            outcomes.append(self._write_row(session, products.get(p.row.id), p, image_vecs, text_vecs, stored,
                                            images, embeddings))
        session.flush()  # product rows exist before their images and embeddings (foreign keys)
        upsert(session, ProductImage, images)
        upsert(session, Embedding, embeddings)
        self._write_readings(session, good)
        for o in outcomes:
            setattr(self.summary, o["outcome"], getattr(self.summary, o["outcome"]) + 1)
        session.execute(RowOutcome.__table__.insert(), [{**o, "run_id": self.summary.run_id} for o in outcomes])

    def _stored_vectors(self, session: Session, changed: set[str], image_vecs: dict,
                        text_vecs: dict) -> dict[tuple[str, str], np.ndarray]:
        """Vectors kept from earlier runs that the fused vector of a half-changed product needs."""
        wanted = [(pid, "image") for pid in changed if pid not in image_vecs] + \
                 [(pid, "text") for pid in changed if pid not in text_vecs]
        if not wanted:
            return {}
        rows = session.execute(select(Embedding.product_id, Embedding.kind, Embedding.vector, Embedding.dtype).where(
            Embedding.product_id.in_({pid for pid, _ in wanted}), Embedding.model == self.encoder.name,
            Embedding.kind.in_(("image", "text"))))
        return {(pid, kind): unpack_vector(vec, dtype) for pid, kind, vec, dtype in rows}

    def _write_row(self, session: Session, product: Product | None, p: Prepared, image_vecs: dict,
                   text_vecs: dict, stored: dict, images: list[dict], embeddings: list[dict]) -> dict:
        """Create or update the product row; append its image facts and vectors to `images` and `embeddings`
        (written for the whole batch at once); returns the row's outcome."""
        row, name = p.row, self.encoder.name
        is_new = product is None or product.status != "active"
        text_hash, meta_hash = row.text_hash(), row.meta_hash()
        if product is None:
            product = Product(id=row.id, key=self.next_key)
            self.next_key += 1
            session.add(product)
        meta_changed = product.meta_hash != meta_hash or product.image_hash != p.image_hash or is_new
        if meta_changed:
            for field_name in STORED_FIELDS:
                setattr(product, field_name, getattr(row, field_name))
            product.image_ref, product.text_hash, product.image_hash = p.image_ref, text_hash, p.image_hash
            product.meta_hash, product.status, product.updated_at = meta_hash, "active", utcnow()
        if p.info is not None:
            images.append({"product_id": row.id, "ref": p.image_ref, "sha256": p.info.sha256,
                           "format": p.info.format, "width": p.info.width, "height": p.info.height,
                           "n_bytes": p.info.n_bytes})
        reencoded = row.id in image_vecs or row.id in text_vecs
        if reencoded:
            image = image_vecs.get(row.id, stored.get((row.id, "image")))
            text = text_vecs.get(row.id, stored.get((row.id, "text")))
            fused = fuse_vectors(image[None, :], text[None, :])[0]
            for kind, vec, source in (("image", image, p.image_hash), ("text", text, text_hash),
                                      ("fused", fused, fused_source(p.image_hash, text_hash))):
                embeddings.append({"product_id": row.id, "model": name, "kind": kind, "source_hash": source,
                                   **pack_vector(vec)})
        outcome = "indexed" if is_new else ("updated" if (meta_changed or reencoded) else "unchanged")
        return {"row_number": row.row_number, "product_id": row.id, "outcome": outcome, "reason": None}

    # -- the run -------------------------------------------------------------------------------------------
    def ingest(self, executor: Executor | None = None) -> None:
        """Read the catalog and write every batch as the executor (default: this process) hands back its
        vectors; each batch commits on its own."""
        self._decide_reading()
        executor = executor or LocalExecutor(self.settings.workers)
        work = RowWork(self.work_spec(), self.encoder)
        with tqdm(total=_estimate_rows(Path(self.options.catalog)), unit="product", desc="indexing",
                  disable=not self.options.progress, dynamic_ncols=True, smoothing=0.1) as bar:
            for batch, encoded in executor.run(work, self._batches()):
                with self.store.session() as session:
                    self._finish_batch(session, batch, encoded)
                bar.update(len(batch.rows) + len(batch.errors))

    def prune(self) -> None:
        """Mark active products that are not in this catalog as deleted (their vectors leave the next version)."""
        with self.store.session() as s:
            active = set(s.scalars(select(Product.id).where(Product.status == "active")))
            gone = sorted(active - self.seen_ids)
            for i in range(0, len(gone), 500):
                chunk = gone[i:i + 500]
                s.execute(update(Product).where(Product.id.in_(chunk)).values(status="deleted", updated_at=utcnow()))
            if gone:
                s.execute(RowOutcome.__table__.insert(), [{"run_id": self.summary.run_id, "row_number": None,
                                                           "product_id": pid, "outcome": "pruned",
                                                           "reason": "not in the catalog (--prune)"} for pid in gone])
        self.summary.pruned = len(gone)

    def finish(self, status: str, started: float) -> None:
        self.summary.seconds = time.monotonic() - started
        with self.store.session() as s:
            run = s.get(IngestRun, self.summary.run_id)
            run.status, run.finished_at, run.counts = status, utcnow(), {**self.summary.counts(),
                                                                         "seconds": round(self.summary.seconds, 2),
                                                                         "version": self.summary.version}


def add_facts(store: Store, rows: Sequence[CatalogRow], resolver: ImageResolver) -> None:
    """New active products with the rows' facts and resolved image references only: no image facts, vectors or
    index version. What the copywriter reads, for its benchmarks and tests that need no search index; a catalog
    that is to be searched goes through `shoplens index`."""
    with store.session() as s:
        next_key = (s.scalar(select(func.max(Product.key))) or 0) + 1
        for key, row in enumerate(rows, start=next_key):
            image_ref = resolver.read(row.image)[1] if row.image else None
            s.add(Product(id=row.id, key=key, image_ref=image_ref, status="active",
                          **{name: getattr(row, name) for name in STORED_FIELDS}))
