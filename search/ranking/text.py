"""Text queries: BM25, a vector search of the words, or both fused (`SearchSettings.hybrid`); "without X" steers
the query vector away from X and leaves out the products that match X. Hybrid also fuses in the multilingual
vectors where the version has them, weighted by how foreign the query's words are to the catalog's BM25
vocabulary (`multilingual_share`), so a query in another language finds products described in English."""
from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Executor, Future
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from indexer.config import MULTILINGUAL_KIND, SearchSettings
from search.fusion import fuse
from search.query import Ranking
from search.ranking.floors import floor, text_floor
from search.ranking.printed import with_printed
from search.state import IndexState
from search.timing import StageTimer
from search.vectors import vector_search

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder
    from indexer.model.multilingual import MultilingualEncoder


def rank_text(state: IndexState, config: SearchSettings, encoder: Callable[[], Encoder], text: str, negative: str,
              mode: str, allowed: np.ndarray | None, timer: StageTimer,
              multilingual: Callable[[], MultilingualEncoder | None] = lambda: None,
              beside: Executor | None = None) -> Ranking:
    """Products for `text` by `mode` (hybrid | lexical | a vector kind), within `allowed` keys (None: all), none
    matching `negative`. `encoder` is called only when vectors are searched, so lexical mode needs no model;
    `multilingual` (the version's multilingual model, None without one) only when hybrid gives it a share.
    `beside` runs the multilingual encode while this thread encodes with the main model, so a hybrid query uses
    two cores where the machine has them free (None: one after the other)."""
    lexical: Ranking = []
    vector: Ranking = []
    foreign: Ranking = []
    share = multilingual_share(state, config, text) if mode == "hybrid" else 0.0
    ml = multilingual() if share > 0 else None
    with timer.stage("encode"):
        ml_pending = _start(beside, _encode_multilingual, ml, text) if ml is not None else None
    if mode in ("hybrid", "lexical"):
        with timer.stage("lexical"):
            lexical = lexical_ranking(state, text, allowed, config.candidates)
    if mode != "lexical":
        kind = config.hybrid_kind if mode == "hybrid" else mode
        with timer.stage("encode"):
            vec = text_vector(encoder(), text, negative, config.negative_weight)
        with timer.stage("vector_search"):
            vector = vector_search(state.version, kind, vec, allowed, config.candidates)
        vector = floor(vector, text_floor(config, state.version, kind), config.vector_margin)
        # Words → image: also the words printed on it, where the catalog's products carry text (on a fashion
        # catalog the few logos `--read-text auto` sampled would outrank the photos: Myntra title R@1 0.172 → 0.135).
        if kind == "image" and config.image_text_weight > 0 and state.printed.carries_text:
            vector = with_printed(state, config, kind, vec, vector, text, allowed, titles=False,
                                  weight=config.image_text_weight, min_score=text_floor(config, state.version, kind),
                                  timer=timer)
    if ml_pending is not None:
        foreign = _foreign(state, config, ml_pending, allowed, timer)
    if negative:
        with timer.stage("lexical"):
            avoid = avoided(state, negative, config.candidates)
        lexical = [(key, s) for key, s in lexical if key not in avoid]
        vector = [(key, s) for key, s in vector if key not in avoid]
        foreign = [(key, s) for key, s in foreign if key not in avoid]
    if mode == "hybrid" and foreign:
        return fuse(vector, lexical, config.hybrid, multilingual=foreign, multilingual_share=share)
    if mode == "hybrid":
        return fuse(vector, lexical, config.hybrid) if vector and lexical else (vector or lexical)
    return lexical if mode == "lexical" else vector


def _foreign(state: IndexState, config: SearchSettings, pending: Future[np.ndarray], allowed: np.ndarray | None,
             timer: StageTimer) -> Ranking:
    """The multilingual ranking of a query whose encode was started beside the main one; nonsense gets none."""
    with timer.stage("encode"):
        vec = pending.result()
    if looks_like_nonsense(state, config, vec):
        return []
    with timer.stage("vector_search"):
        foreign = vector_search(state.version, MULTILINGUAL_KIND, vec, allowed, config.candidates)
    return floor(foreign, text_floor(config, state.version, MULTILINGUAL_KIND), config.multilingual_margin)


def _start(beside: Executor | None, fn: Callable[..., np.ndarray], *args: object) -> Future[np.ndarray]:
    """`fn(*args)` on `beside`, or here and now (a finished future) without one."""
    if beside is not None:
        return beside.submit(fn, *args)
    done: Future[np.ndarray] = Future()
    done.set_result(fn(*args))
    return done


def looks_like_nonsense(state: IndexState, config: SearchSettings, ml_vec: np.ndarray) -> bool:
    """A query whose multilingual vector lies near the version's nonsense centroid (random strings cluster there;
    e5 scores them against products as high as real words): it gets no multilingual hits."""
    centroid = state.nonsense_centroid
    return centroid is not None and float(ml_vec @ centroid) >= config.multilingual_nonsense_cosine


def multilingual_share(state: IndexState, config: SearchSettings, text: str) -> float:
    """The multilingual ranking's share of a hybrid query: `multilingual_weight` when every word of `text` is in
    the catalog's BM25 vocabulary, rising linearly to `multilingual_foreign_weight` when none is; 0 where the
    version has no multilingual vectors."""
    if MULTILINGUAL_KIND not in state.version.manifest["kinds"]:
        return 0.0
    unknown = 1.0 - state.version.lexical().coverage(text)
    share = config.multilingual_weight + (config.multilingual_foreign_weight - config.multilingual_weight) * unknown
    return min(1.0, max(0.0, share))


def lexical_ranking(state: IndexState, text: str, allowed: np.ndarray | None, candidates: int) -> Ranking:
    """The BM25 top `candidates` among `allowed` keys (BM25 cannot filter inside, so it looks 8 times deeper)."""
    lexical = state.version.lexical()
    if allowed is None:
        return lexical.search(text, candidates)
    allowed_set = set(allowed.tolist())
    hits = lexical.search(text, candidates * 8)
    return [(key, s) for key, s in hits if key in allowed_set][:candidates]


def avoided(state: IndexState, negative: str, candidates: int) -> set[int]:
    """Products a "without X" query leaves out: BM25 matches of X, and titles with a word starting with X's
    words ("without print" also drops "Printed Tshirt"; BM25 does not stem)."""
    avoid = {key for key, _ in state.version.lexical().search(negative, candidates * 5)}
    stems = [w for w in re.findall(r"\w+", negative.lower()) if len(w) >= 3]
    if stems:
        pattern = re.compile(rb"\b(?:" + b"|".join(re.escape(w.encode()) for w in stems) + b")")
        avoid.update(state.table.title_matches(pattern).tolist())
    return avoid


def text_vector(encoder: Encoder, text: str, negative: str, negative_weight: float) -> np.ndarray:
    """The query vector of `text`, pushed `negative_weight` away from `negative` when there is one."""
    if not negative:
        return _encode_text(encoder, text)
    return _unit(_encode_text(encoder, text) - negative_weight * _encode_text(encoder, negative))


QUERY_CACHE_SIZE = 4096


class QueryCacheInfo(NamedTuple):
    """How well the query-encoding cache works in this process (for /metrics)."""
    hits: int
    misses: int
    size: int
    maxsize: int


def query_cache_info() -> QueryCacheInfo:
    """Hits, misses and entries of this process's query-encoding caches (both models), so operators see whether
    they pay."""
    infos = [_encode_text.cache_info(), _encode_multilingual.cache_info()]
    return QueryCacheInfo(*(sum(getattr(i, f) or 0 for i in infos) for f in ("hits", "misses", "currsize", "maxsize")))


def clear_query_caches() -> None:
    """Forget this process's query encodings (benchmarks that time the encode itself)."""
    _encode_text.cache_clear()
    _encode_multilingual.cache_clear()


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _encode_text(encoder: Encoder, text: str) -> np.ndarray:
    """A text's vector, cached: shoppers repeat queries (and suggestions), and encoding is most of a query's time."""
    vec = encoder.encode_texts([text])[0]
    vec.setflags(write=False)
    return vec


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _encode_multilingual(encoder: MultilingualEncoder, text: str) -> np.ndarray:
    """A query's multilingual vector, cached like `_encode_text` (~14 ms a query on a loaded core)."""
    vec = encoder.encode_queries([text])[0]
    vec.setflags(write=False)
    return vec


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else vec.astype(np.float32)
