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

from indexer.errors import NoIndex, NotFound

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
IVF_NPROBE = 16
RECALL_QUERIES = 1000
IVFPQ_MIN_VECTORS = 39 * 256  # FAISS trains 256 centroids per PQ sub-quantizer on >= 39 points each
# The fused product vector: image and text vectors of one product live in the same space, so their normalised
# blend is a product vector that matches both kinds of query. Search fuses combined queries with the same weight.
FUSED_IMAGE_WEIGHT = 0.5


@dataclass(frozen=True)
class IndexPlan:
    """Which FAISS index to build and with what parameters; `reason` is recorded in the manifest."""

    type: str  # "flat" | "hnsw" | "ivfpq"
    params: dict = field(default_factory=dict)
    reason: str = ""


def _divisor_at_most(dim: int, target: int) -> int:
    return max(d for d in range(1, target + 1) if dim % d == 0)


def choose_index_type(n_vectors: int, dim: int, memory_budget_bytes: int, *,
                      exact_max_bytes: int = EXACT_MAX_BYTES) -> IndexPlan:
    """Pick the index for `n_vectors` of `dim` within a memory budget; a pure function, so it is easy to test.

    flat (exact) while a query's scan of the raw vectors stays under `exact_max_bytes` and they fit the budget;
    HNSW above that while raw vectors plus its graph fit the budget (best recall/latency of the approximate ones);
    otherwise IVF-PQ, which compresses each vector to `pq_m` bytes (its recall is measured and recorded like the
    others').
    """
    flat_bytes = n_vectors * dim * 4
    if flat_bytes <= exact_max_bytes and flat_bytes <= memory_budget_bytes:
        return IndexPlan("flat", {}, f"{n_vectors} x {dim} float32 = {flat_bytes >> 20} MB <= "
                                     f"{exact_max_bytes >> 20} MB a query scans: exact search")
    hnsw_bytes = flat_bytes + n_vectors * HNSW_M * 2 * 4
    if hnsw_bytes <= memory_budget_bytes:
        return IndexPlan("hnsw", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH},
                         f"{flat_bytes >> 20} MB of vectors > {exact_max_bytes >> 20} MB for exact search, "
                         f"HNSW needs {hnsw_bytes >> 20} MB <= budget")
    if n_vectors < IVFPQ_MIN_VECTORS:
        return IndexPlan("flat", {}, f"over budget, but {n_vectors} vectors are too few to train IVF-PQ: exact")
    nlist = int(min(65536, max(16, 4 * np.sqrt(n_vectors))))
    nlist = min(nlist, max(1, n_vectors // 39))  # FAISS wants >= 39 training points per centroid
    pq_m = _divisor_at_most(dim, max(1, dim // 4))  # 4 dims per byte: 16x smaller than float32
    return IndexPlan("ivfpq", {"nlist": nlist, "pq_m": pq_m, "nbits": 8, "nprobe": IVF_NPROBE},
                     f"HNSW would need {hnsw_bytes >> 20} MB > budget {memory_budget_bytes >> 20} MB")


def build_index(vectors: np.ndarray, keys: np.ndarray, plan: IndexPlan) -> faiss.Index:
    """A FAISS inner-product index over L2-normalised `vectors` with ids `keys`."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    dim = vectors.shape[1]
    if plan.type == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif plan.type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, plan.params["M"], faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = plan.params["efConstruction"]
        index = faiss.IndexIDMap2(inner)
    elif plan.type == "ivfpq":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, plan.params["nlist"], plan.params["pq_m"], plan.params["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
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


def recall_at_k(index: faiss.Index, vectors: np.ndarray, keys: np.ndarray, k: int = 10,
                n_queries: int = RECALL_QUERIES, seed: int = 0) -> float:
    """Recall@k of `index` against exact search, with a sample of the indexed vectors as queries."""
    n = len(vectors)
    if n == 0:
        return 1.0
    k = min(k, n)
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, size=min(n_queries, n), replace=False)
    queries = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, truth = exact.search(queries, k)
    truth = np.asarray(keys)[truth]  # `exact` returns row positions, `index` returns keys
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
        self._indexes: dict[str, faiss.Index] = {}
        self._lexical = None
        self._lock = threading.Lock()

    def index(self, kind: str) -> faiss.Index:
        if kind not in self.manifest["kinds"]:
            raise NotFound(f"index version {self.name} has no {kind!r} vectors",
                           hint=f"Kinds: {', '.join(self.manifest['kinds'])}.")
        with self._lock:
            if kind not in self._indexes:
                spec = self.manifest["kinds"][kind]
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
