"""Vector access over one index version: FAISS search restricted to the keys a filter allows, exact scoring among a
few allowed keys, and stored vectors read back from the FAISS file or, where it keeps only codes, the database."""
from __future__ import annotations

import faiss
import numpy as np
from sqlalchemy import select

from indexer.store import Embedding, unpack_vector
from indexer.vectors import CompressedIndex, LoadedVersion
from search.query import Ranking
from search.state import IndexState

# Filters that leave at most this many products are searched exactly over their stored vectors (see exact_among).
EXACT_FILTERED_MAX = 4_000


def vector_search(version: LoadedVersion, kind: str, vec: np.ndarray, allowed: np.ndarray | None,
                  limit: int) -> Ranking:
    """The top `limit` products of one kind by cosine; `allowed` (keys) restricts the search inside FAISS, so a
    narrow filter still fills a page."""
    index = version.index(kind)
    k = min(limit, index.ntotal)
    if k <= 0:
        return []
    query = np.ascontiguousarray(vec.reshape(1, -1), dtype=np.float32)
    if allowed is None:
        scores, keys = index.search(query, k)
    else:
        if len(allowed) == 0:
            return []
        if version.manifest["kinds"][kind]["type"] != "flat" and len(allowed) <= EXACT_FILTERED_MAX:
            exact = exact_among(index, query[0], np.asarray(allowed, dtype=np.int64), k)
            if exact is not None:
                return exact
        if isinstance(index, CompressedIndex):
            scores, keys = index.search(query, min(k, len(allowed)), allowed=allowed)
        else:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            scores, keys = index.search(query, min(k, len(allowed)), params=search_params(index, selector))
    return [(int(key), float(s)) for key, s in zip(keys[0], scores[0]) if key >= 0]


def exact_among(index: faiss.Index | CompressedIndex, query: np.ndarray, allowed: np.ndarray, k: int) -> Ranking | None:
    """Exact top-k among a few allowed keys. A graph index searched with a narrow filter walks mostly through
    excluded nodes and can return fewer hits than exist; scoring the few allowed vectors directly is exact and,
    under EXACT_FILTERED_MAX of them, as fast. None where vectors can't be reconstructed (IVF-PQ keeps only
    codes): the caller then runs its filtered index search."""
    try:
        vectors = index.reconstruct_batch(allowed)
    except RuntimeError:
        return None
    scores = vectors @ query
    top = np.argsort(-scores)[:k]
    return [(int(allowed[i]), float(scores[i])) for i in top]


def search_params(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """Search parameters carrying an id selector, of the type the (inner) index expects."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(inner.hnsw.efSearch, 128))
    elif isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=max(inner.nprobe, 16))
    else:
        params = faiss.SearchParameters(sel=selector)
    return params  # the caller keeps `selector` alive while the search runs


def stored_vectors(state: IndexState, kind: str, keys: list[int]) -> dict[int, np.ndarray]:
    """Vectors of `keys` from the index (exact and HNSW indexes keep them, a compressed one its float16 store), else
    from the database."""
    manifest = state.version.manifest
    if kind not in manifest["kinds"]:
        return {}
    index = state.version.index(kind)
    try:
        vecs = index.reconstruct_batch(np.asarray(keys, dtype=np.int64)) if len(keys) else []
        return {int(key): vec for key, vec in zip(keys, vecs)}
    except RuntimeError:  # IVF-PQ without a direct map, or a key missing from this version
        pass
    by_key = {state.table.by_key[k].id: k for k in keys if k in state.table.by_key}
    with state.store.session() as session:
        rows = session.execute(select(Embedding.product_id, Embedding.vector, Embedding.dtype).where(
            Embedding.product_id.in_(list(by_key)), Embedding.kind == kind,
            Embedding.model == manifest["kinds"][kind].get("model", manifest.get("model")))).all()
    return {by_key[r.product_id]: unpack_vector(r.vector, r.dtype) for r in rows}


def similarities(state: IndexState, kind: str, vec: np.ndarray, keys: list[int]) -> dict[int, float]:
    """Cosine of `vec` with the stored `kind` vectors of `keys` (keys without one are left out)."""
    stored = stored_vectors(state, kind, keys)
    return {key: float(np.dot(v, vec)) for key, v in stored.items()}
