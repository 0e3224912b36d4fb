"""FAISS index versions: choosing the index type, building it, publishing it atomically, and reading it.

Layout (docs/ARCHITECTURE.md): `<index_dir>/CURRENT` names the published version; `<index_dir>/<version>/` holds
`manifest.json`, one `<kind>.faiss` per vector kind (ids = `Product.key`) and `lexical/`. A build writes into a
hidden staging folder, fsyncs every file, renames the folder to its version name and only then replaces CURRENT
with `os.replace`: a reader sees the old version or the new one, never a half-written one.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from indexer.errors import BudgetTooSmall, NoIndex, NotFound

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
_STAGING_PREFIX = ".staging-"
# Exact search while one query scans at most this many bytes. A brute-force inner-product scan is bound by memory
# bandwidth: on this 2-core machine, one thread, 44,441 x 1,920 float32 (325 MB) took 40 ms a query, 44,441 x 640
# (108 MB) 8 ms, 20,000 x 1,920 (146 MB) 20 ms. A text query's whole latency budget is 25 ms, so exact search stops
# at 32 MB (~4 ms: e.g. 4,000 products at the default model's 1,920 dimensions, 16,000 at 512), with recall 1.0
# and no training. Above it HNSW answers in about a millisecond, with its recall against exact search measured
# at build time and stored with the version.
EXACT_MAX_BYTES = 32 << 20
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
RECALL_QUERIES = 1000
# The fused product vector: image and text vectors of one product live in the same space, so their normalised
# blend is a product vector that matches both kinds of query. Search fuses combined queries with the same weight.
FUSED_IMAGE_WEIGHT = 0.5


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build and with what parameters; `reason` is recorded in the manifest."""

    type: str  # "flat" | "hnsw" | "ivf" (IVF over SQ8 or PQ codes of projected vectors, re-ranked exactly)
    params: dict = field(default_factory=dict)
    reason: str = ""
    memory_bytes: int = 0  # what one serving worker holds for this kind (a memory-mapped re-rank store aside)


# Compressed plans, best first: (codec, served dimensions, PQ bytes). The served dimension is a learned projection
# (the top eigenvectors of the vectors' second moment, fitted at publish on a sample), the codes are SQ8 (a byte a
# dimension) or PQ; the top `RERANK` candidates are then scored exactly on the float16 vectors, memory-mapped.
COMPRESSED = (("sq8", 512, 0), ("sq8", 384, 0), ("sq8", 256, 0), ("sq8", 128, 0), ("pq", 128, 32), ("pq", 128, 16),
              ("pq", 128, 8))
COMPRESS_MIN_VECTORS = 256  # IVF trains on >= 39 points a list (at least 6 lists here)
PQ_MIN_VECTORS = 39 * 256  # PQ trains 256 centroids per sub-quantizer on >= 39 points each
RERANK = 200
PROJECTION_SAMPLE = 50_000
IVF_NPROBE = 48


def _ivf_lists(n_vectors: int) -> int:
    return int(min(65536, max(16, 4 * np.sqrt(n_vectors)), max(1, n_vectors // 39)))


def _compressed_bytes(n_vectors: int, dim: int, codec: str, served: int, pq_m: int) -> int:
    code = served if codec == "sq8" else pq_m
    projection = 0 if served == dim else dim * served * 4
    return n_vectors * (code + 8) + _ivf_lists(n_vectors) * served * 4 + projection


def _mb(n_bytes: int) -> int:
    return -(-n_bytes // (1 << 20))


def choose_index_type(n_vectors: int, dim: int, memory_budget_bytes: int, *, shares: int = 1,
                      exact_max_bytes: int = EXACT_MAX_BYTES) -> IndexPlan:
    """Pick one kind's index for `n_vectors` of `dim` when `shares` kinds split `memory_budget_bytes`; a pure
    function, so it is easy to test. Raises BudgetTooSmall, naming the smallest budget that works.

    flat (exact) while a query's scan of the raw vectors stays under `exact_max_bytes` and they fit; HNSW over the
    raw vectors while they and its graph fit (best recall and latency); otherwise the first compressed plan that
    fits (`COMPRESSED`): IVF over SQ8/PQ codes of projected vectors, the top candidates re-ranked exactly.
    """
    budget = memory_budget_bytes // max(1, shares)
    flat_bytes = n_vectors * dim * 4
    if flat_bytes <= exact_max_bytes and flat_bytes <= budget:
        return IndexPlan("flat", {}, f"{n_vectors} x {dim} float32 = {_mb(flat_bytes)} MB <= "
                                     f"{exact_max_bytes >> 20} MB a query scans: exact search", flat_bytes)
    hnsw_bytes = flat_bytes + n_vectors * HNSW_M * 2 * 4
    if hnsw_bytes <= budget:
        return IndexPlan("hnsw", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH},
                         f"{_mb(flat_bytes)} MB of vectors > {exact_max_bytes >> 20} MB for exact search, "
                         f"HNSW needs {_mb(hnsw_bytes)} MB <= {_mb(budget)} MB a kind", hnsw_bytes)
    if n_vectors < COMPRESS_MIN_VECTORS:
        raise BudgetTooSmall(f"index memory budget {_mb(memory_budget_bytes)} MB is too small: {n_vectors} vectors "
                             f"are too few to train a compressed index, exact search needs "
                             f"{_mb(min(flat_bytes, hnsw_bytes) * shares)} MB",
                             hint=f"Set SHOPLENS_INDEX_MEMORY_BUDGET_MB to at least "
                                  f"{_mb(flat_bytes * shares)}.")
    lists = _ivf_lists(n_vectors)
    for codec, served, pq_m in COMPRESSED:
        served = min(served, dim)
        if codec == "pq" and (served % pq_m or n_vectors < PQ_MIN_VECTORS):
            continue
        need = _compressed_bytes(n_vectors, dim, codec, served, pq_m)
        if need <= budget:
            code = f"SQ8 ({served} B)" if codec == "sq8" else f"PQ{pq_m} ({pq_m} B)"
            return IndexPlan("ivf", {"codec": codec, "dim": served, "pq_m": pq_m, "nlist": lists,
                                     "nprobe": IVF_NPROBE, "rerank": RERANK},
                             f"HNSW would need {_mb(hnsw_bytes)} MB > {_mb(budget)} MB a kind: {dim}-d projected to "
                             f"{served}, {code} codes a vector in IVF{lists} = {_mb(need)} MB, top {RERANK} "
                             f"re-ranked on memory-mapped float16 vectors", need)
    smallest = min(_compressed_bytes(n_vectors, dim, c, min(d, dim), m) for c, d, m in COMPRESSED
                   if c == "sq8" or (min(d, dim) % m == 0 and n_vectors >= PQ_MIN_VECTORS))
    raise BudgetTooSmall(f"index memory budget {_mb(memory_budget_bytes)} MB is too small for {n_vectors} vectors "
                         f"of {dim} dimensions in {shares} kind(s)",
                         hint=f"Set SHOPLENS_INDEX_MEMORY_BUDGET_MB to at least {_mb(smallest * shares)}.")


def fit_projection(sample: np.ndarray, served: int) -> np.ndarray:
    """(dim, served) float32: the top eigenvectors of the sample's second moment. Not centred, so inner products
    of projected vectors approximate the original cosines (a centred PCA would add a term that depends on the
    product and reorder them)."""
    x = np.asarray(sample, dtype=np.float64)
    values, vectors = np.linalg.eigh(x.T @ x / max(1, len(x)))
    return np.ascontiguousarray(vectors[:, np.argsort(-values)[:served]], dtype=np.float32)


def _rows(vectors: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(vectors[start:stop], dtype=np.float32)


CHUNK = 65_536


class CompressedIndex:
    """IVF over SQ8/PQ codes of projected vectors, the top candidates re-ranked on the float16 vectors (a memory-
    mapped `.npy` when loaded: only the rows a query re-ranks are read). Offers what search uses of a FAISS index:
    `ntotal`, `d`, `search`, `reconstruct_batch`, `reconstruct_n`."""

    def __init__(self, coarse: faiss.Index, projection: np.ndarray | None, store: np.ndarray, keys: np.ndarray,
                 params: dict) -> None:
        self.coarse, self.projection, self.store, self.params = coarse, projection, store, params
        self.keys = np.asarray(keys, dtype=np.int64)  # ascending: a key's row is its position
        self.ntotal, self.d = int(store.shape[0]), int(store.shape[1])
        self.coarse.nprobe = params.get("nprobe", IVF_NPROBE)

    @classmethod
    def build(cls, vectors: np.ndarray, keys: np.ndarray, plan: IndexPlan, seed: int = 0) -> "CompressedIndex":
        """Fit the projection and the codes on a sample of `vectors` (float16 or float32, rows in `keys` order,
        keys ascending), then add every vector a chunk at a time."""
        p = plan.params
        n, dim = vectors.shape
        rng = np.random.default_rng(seed)
        sample = _rows(vectors[np.sort(rng.choice(n, size=min(n, PROJECTION_SAMPLE), replace=False))], 0, None)
        projection = fit_projection(sample, p["dim"]) if p["dim"] < dim else None
        codec = "SQ8" if p["codec"] == "sq8" else f"PQ{p['pq_m']}"
        coarse = faiss.index_factory(p["dim"], f"IVF{p['nlist']},{codec}", faiss.METRIC_INNER_PRODUCT)
        coarse.train(sample if projection is None else sample @ projection)
        for start in range(0, n, CHUNK):
            chunk = _rows(vectors, start, start + CHUNK)
            coarse.add_with_ids(chunk if projection is None else chunk @ projection, keys[start:start + CHUNK])
        return cls(coarse, projection, vectors, keys, p)

    def save(self, folder: Path, kind: str) -> dict:
        """Write the codes, projection and float16 store under `folder`; the manifest entries naming them."""
        files = {"file": f"{kind}.faiss", "store": f"{kind}.f16.npy"}
        faiss.write_index(self.coarse, str(folder / files["file"]))
        if self.projection is not None:
            files["projection"] = f"{kind}.projection.npy"
            np.save(folder / files["projection"], self.projection)
        target = folder / files["store"]
        if Path(getattr(self.store, "filename", "") or "") != target:
            out = np.lib.format.open_memmap(target, mode="w+", dtype=np.float16, shape=self.store.shape)
            for start in range(0, self.ntotal, CHUNK):
                out[start:start + CHUNK] = self.store[start:start + CHUNK]
            out.flush()
            del out
        return files

    @classmethod
    def load(cls, folder: Path, spec: dict, keys: np.ndarray) -> "CompressedIndex":
        coarse = load_index(folder / spec["file"])
        projection = np.load(folder / spec["projection"]) if spec.get("projection") else None
        store = np.load(folder / spec["store"], mmap_mode="r")
        return cls(coarse, projection, store, keys, spec.get("params", {}))

    def _row_of(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.keys, keys), max(self.ntotal - 1, 0))
        if len(keys) and (self.ntotal == 0 or not np.array_equal(self.keys[rows], keys)):
            raise RuntimeError("a key is not in this index")
        return rows

    def reconstruct_batch(self, keys: np.ndarray) -> np.ndarray:
        rows = self._row_of(keys)
        order = np.argsort(rows)  # sorted reads of the memory map
        out = np.empty((len(rows), self.d), dtype=np.float32)
        out[order] = self.store[rows[order]]
        return out

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        return _rows(self.store, start, start + n)

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) of the top `k` by exact cosine among the coarse search's top candidates."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        fetch = max(k, self.params.get("rerank", RERANK))
        projected = queries if self.projection is None else queries @ self.projection
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=max(self.coarse.nprobe, 64))
        _, candidates = self.coarse.search(projected, fetch, params=params)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        keys = np.full((len(queries), k), -1, dtype=np.int64)
        for i, found in enumerate(candidates):
            found = found[found >= 0]
            if not len(found):
                continue
            exact = self.reconstruct_batch(found) @ queries[i]
            top = np.argsort(-exact)[:k]
            scores[i, :len(top)], keys[i, :len(top)] = exact[top], found[top]
        return scores, keys


def build_index(vectors: np.ndarray, keys: np.ndarray, plan: IndexPlan) -> faiss.Index | CompressedIndex:
    """An inner-product index over L2-normalised `vectors` with ids `keys` (ascending for a compressed plan)."""
    if plan.type == "ivf":
        return CompressedIndex.build(vectors, np.asarray(keys, dtype=np.int64), plan)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    dim = vectors.shape[1]
    if plan.type == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif plan.type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, plan.params["M"], faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = plan.params["efConstruction"]
        index = faiss.IndexIDMap2(inner)
    else:
        raise ValueError(f"unknown index type {plan.type!r}")
    if len(vectors):
        index.add_with_ids(vectors, keys)
    apply_search_params(index, plan.params)
    return index


def fuse_vectors(image: np.ndarray, text: np.ndarray, image_weight: float = FUSED_IMAGE_WEIGHT) -> np.ndarray:
    """Row-wise L2-normalised blend `w * image + (1 - w) * text` of two (n, dim) matrices."""
    blend = image_weight * np.asarray(image, dtype=np.float32) + (1 - image_weight) * np.asarray(text, np.float32)
    norms = np.linalg.norm(blend, axis=1, keepdims=True)
    return (blend / np.maximum(norms, 1e-12)).astype(np.float32)


def write_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def apply_search_params(index: faiss.Index, params: dict) -> None:
    """Search-time knobs are not all saved in the file; set them after building and after loading."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexHNSW) and "efSearch" in params:
        inner.hnsw.efSearch = params["efSearch"]
    if isinstance(inner, faiss.IndexIVF) and "nprobe" in params:
        inner.nprobe = params["nprobe"]


def exact_top_k(vectors: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Keys of each query's exact top `k` by inner product, scanning `vectors` (float16 or float32, possibly a
    memory map) a chunk at a time, so ground truth for a million vectors never needs them all as float32."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_k = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), CHUNK):
        scores = queries @ _rows(vectors, start, start + CHUNK).T
        best_s = np.concatenate([best_s, scores], axis=1)
        best_k = np.concatenate([best_k, np.broadcast_to(keys[start:start + CHUNK], scores.shape)], axis=1)
        top = np.argpartition(-best_s, min(k, best_s.shape[1] - 1), axis=1)[:, :k]
        best_s, best_k = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_k, top, 1)
    return best_k


def recall_at_k(index: faiss.Index | CompressedIndex, vectors: np.ndarray, keys: np.ndarray, k: int = 10,
                n_queries: int = RECALL_QUERIES, seed: int = 0) -> float:
    """Recall@k of `index` against exact search, with a sample of the indexed vectors as queries."""
    n = len(vectors)
    if n == 0:
        return 1.0
    k = min(k, n)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    queries = _rows(vectors[rows], 0, None)
    truth = exact_top_k(vectors, np.asarray(keys, dtype=np.int64), queries, k)
    _, found = index.search(queries, k)
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def current_version(index_dir: Path) -> str | None:
    """The published version's name, or None before the first publish."""
    try:
        return (index_dir / CURRENT).read_text().strip() or None
    except FileNotFoundError:
        return None


def read_manifest(index_dir: Path, name: str) -> dict:
    try:
        return json.loads((index_dir / name / "manifest.json").read_text())
    except FileNotFoundError:
        raise NotFound(f"index version {name} has no manifest under {index_dir}") from None


def version_names(index_dir: Path) -> list[str]:
    if not index_dir.is_dir():
        return []
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("v") and
                  p.name[1:].isdigit())


def clean_staging(index_dir: Path) -> None:
    """Remove folders left by a build that was killed before publishing."""
    if index_dir.is_dir():
        for p in index_dir.iterdir():
            if p.name.startswith(_STAGING_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def _point_current(index_dir: Path, name: str) -> None:
    tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex}"
    with open(tmp, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / CURRENT)
    _fsync_path(index_dir)


def publish_version(index_dir: Path, write: Callable[[Path], dict]) -> tuple[str, dict]:
    """Build a version with `write(staging_dir) -> manifest`, then publish it atomically; returns (name, manifest).

    The previous version is recorded in the manifest (for rollback); older ones are pruned.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    clean_staging(index_dir)
    staging = index_dir / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        manifest = write(staging)
        existing = version_names(index_dir)
        name = f"v{(int(existing[-1][1:]) + 1 if existing else 1):06d}"
        manifest = {**manifest, "name": name, "previous": current_version(index_dir), "created_at": time.time()}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _fsync_tree(staging)
        os.rename(staging, index_dir / name)
        _fsync_path(index_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point_current(index_dir, name)
    prune_versions(index_dir, keep={name, manifest["previous"]})
    log.info("published index version %s (%d vectors)", name, manifest.get("count", 0))
    return name, manifest


def prune_versions(index_dir: Path, keep: set[str | None]) -> list[str]:
    """Delete every version folder not in `keep`; returns the names removed."""
    removed = [n for n in version_names(index_dir) if n not in keep]
    for name in removed:
        shutil.rmtree(index_dir / name, ignore_errors=True)
    return removed


def rollback(index_dir: Path) -> tuple[str, str]:
    """Point CURRENT back at the version published before it; returns (from, to)."""
    name = current_version(index_dir)
    if name is None:
        raise NoIndex("there is no published index version to roll back", hint="Run `shoplens index` first.")
    previous = read_manifest(index_dir, name).get("previous")
    if not previous or not (index_dir / previous / "manifest.json").is_file():
        raise NotFound(f"index version {name} has no previous version kept to roll back to")
    _point_current(index_dir, previous)
    return name, previous


def load_index(path: Path, params: dict | None = None) -> faiss.Index:
    """Read a `.faiss` file memory-mapped (pages load on demand and are shared between server workers)."""
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    apply_search_params(index, params or {})
    return index


class LoadedVersion:
    """One published version: its manifest, its FAISS indexes (loaded on first use) and its lexical index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = json.loads((path / "manifest.json").read_text())
        self.name: str = self.manifest["name"]
        self._indexes: dict[str, faiss.Index | CompressedIndex] = {}
        self._lexical = None
        self._lock = threading.Lock()

    def index(self, kind: str) -> faiss.Index | CompressedIndex:
        if kind not in self.manifest["kinds"]:
            raise NotFound(f"index version {self.name} has no {kind!r} vectors",
                           hint=f"Kinds: {', '.join(self.manifest['kinds'])}.")
        with self._lock:
            if kind not in self._indexes:
                spec = self.manifest["kinds"][kind]
                if spec["type"] == "ivf":
                    keys = np.load(self.path / self.manifest["keys"], mmap_mode="r")
                    self._indexes[kind] = CompressedIndex.load(self.path, spec, keys)
                else:
                    self._indexes[kind] = load_index(self.path / spec["file"], spec.get("params"))
            return self._indexes[kind]

    def search(self, kind: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) arrays of shape (n_queries, k); missing results have key -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.index(kind).search(queries, k)

    def lexical(self):
        """The version's BM25 index (`indexer.lexical.LexicalIndex`)."""
        from indexer.lexical import LexicalIndex

        with self._lock:
            if self._lexical is None:
                self._lexical = LexicalIndex.load(self.path / self.manifest.get("lexical", "lexical/"))
            return self._lexical


class IndexReader:
    """Gives the CURRENT version, reloading when CURRENT changes (one stat per call), so a running server picks
    up a new version without restart. Old versions stay usable by requests that already hold them."""

    def __init__(self, index_dir: str | os.PathLike) -> None:
        self.index_dir = Path(index_dir)
        self._stamp: tuple[int, int] | None = None
        self._version: LoadedVersion | None = None
        self._lock = threading.Lock()

    def current(self) -> LoadedVersion:
        try:
            st = os.stat(self.index_dir / CURRENT)
        except FileNotFoundError:
            raise NoIndex("no index has been published yet", hint="Run `shoplens index CATALOG` first.") from None
        stamp = (st.st_ino, st.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp or self._version is None:
                name = current_version(self.index_dir)
                if self._version is None or self._version.name != name:
                    self._version = LoadedVersion(self.index_dir / name)
                    log.info("loaded index version %s", name)
                self._stamp = stamp
            return self._version
