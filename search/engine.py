"""The query engine: text, photo, photo + text, "without X" and more-like-this, over the CURRENT index version.

A text query runs the lexical ranker (BM25) and a vector search and fuses them (hybrid, `SearchSettings.hybrid`);
a photo query searches image vectors with the photo's vector, nudged by any text ("like this, but in blue") and
pushed away from any negative text. Filters restrict the vector search inside FAISS (an id selector), so a narrow
filter still fills a page; facets count over every hit that passes the score floor. Each stage is timed so
the API can export where the time goes.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import faiss
import numpy as np
from PIL import Image
from sqlalchemy import select

from indexer.config import SearchSettings, Settings
from indexer.errors import BadInput, NotFound
from indexer.reading import TextReader, load_reader
from indexer.reading.stored import printed_lines
from indexer.reading.words import words
from indexer.store import CopyVersion, Embedding, Product, ProductImage, Store, open_store
from indexer.vectors import IndexReader, LoadedVersion
from search.dedupe import collapse
from search.filters import Filters
from search.fusion import fuse
from search.printed import PrintedIndex, fuse_printed
from search.products import ProductTable
from search.query import Hit, Query, SearchResult, split_negative
from search.suggest import Suggester

log = logging.getLogger(__name__)
# Filters that leave at most this many products are searched exactly over their stored vectors (see _exact_among).
EXACT_FILTERED_MAX = 4_000

Ranking = list[tuple[int, float]]


class _Timer:
    """Accumulates seconds per stage for one query."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


@dataclass
class _State:
    """What one index version needs besides its files: the product facts it was built with."""

    version: LoadedVersion
    table: ProductTable
    suggester: Suggester | None = None
    printed: PrintedIndex | None = None  # loaded on the first query that reads printed words


class SearchEngine:
    """Answers queries against the published index; safe to share between threads of one process."""

    def __init__(self, settings: Settings, config: SearchSettings | None = None, *, store: Store | None = None,
                 text_reader: TextReader | None = None) -> None:
        self.settings = settings
        self._text_reader = text_reader  # reads query photos' words; None: the process's (indexer.reading)
        self.config = config or settings.search
        self.store = store or open_store(settings.db_url)
        self.reader = IndexReader(settings.index_dir)
        self._state: _State | None = None
        self._lock = threading.Lock()

    # --- index version and model -------------------------------------------------------------------------
    def state(self) -> _State:
        """The current version and its product facts, reloaded when CURRENT changes."""
        version = self.reader.current()
        state = self._state
        if state is None or state.version is not version:
            with self._lock:
                if self._state is None or self._state.version is not version:
                    self._state = _State(version, ProductTable.load(self.store))
                state = self._state
        return state

    def encoder(self):
        """The encoder the current index was built with (loaded once per process); see `load_version_encoder`."""
        from indexer.model.encoder import load_version_encoder

        return load_version_encoder(self.state().version.manifest, default_spec=self.settings.model_spec,
                                    cache_dir=self.settings.model_cache_dir)

    def warm_up(self) -> str:
        """Load the index, the product facts and the model, and run one query; returns the index version."""
        state = self.state()
        self.encoder().encode_texts(["warm up"])
        for kind in {self.config.hybrid_kind, self.config.image_kind, self.config.similar_kind}:
            if kind in state.version.manifest["kinds"]:
                state.version.index(kind)
        state.version.lexical()
        return state.version.name

    # --- queries -------------------------------------------------------------------------------------------
    def search(self, query: Query) -> SearchResult:
        """Answer a text, photo, photo + text, or more-like-this query."""
        if query.k < 1 or query.page < 1:
            raise BadInput("k and page must be at least 1")
        timer = _Timer()
        state = self.state()
        text, negative = split_negative(query.text or "")
        negative = " ".join(filter(None, [negative, (query.negative or "").strip()]))
        with timer.stage("metadata"):
            allowed = state.table.allowed_keys(query.filters)
        if query.like is not None:
            kind, mode = "similar", self.config.similar_kind
            ranking = self._similar(state, query.like, allowed, timer)
        elif query.image is not None:
            kind, mode = ("image+text" if text else "image"), self.config.image_kind
            ranking = self._photo(state, query.image, text, negative, query.image_weight, allowed, timer)
        elif text:
            kind, mode = "text", query.mode or self.config.text_mode
            ranking = self._text(state, text, negative, mode, allowed, timer)
        else:  # no query: browse the (filtered) catalog
            kind, mode = "browse", "filters"
            keys = allowed if allowed is not None else state.table.keys
            ranking = [(int(key), 0.0) for key in keys[: self.config.candidates]]
        return self._page(state, ranking, query, kind=kind, mode=mode, text=text, negative=negative, timer=timer)

    def similar(self, product_id: str, *, k: int = 10, page: int = 1, filters: Filters | None = None) -> SearchResult:
        """Products that look like `product_id` (itself excluded)."""
        return self.search(Query(like=product_id, k=k, page=page, filters=filters or Filters()))

    def _text(self, state: _State, text: str, negative: str, mode: str, allowed, timer: _Timer) -> Ranking:
        cfg = self.config
        lexical: Ranking = []
        vector: Ranking = []
        if mode in ("hybrid", "lexical"):
            with timer.stage("lexical"):
                lexical = self._lexical(state, text, allowed)
        if mode != "lexical":
            kind = cfg.hybrid_kind if mode == "hybrid" else mode
            with timer.stage("encode"):
                vec = self._text_vector(text, negative)
            with timer.stage("vector_search"):
                vector = self._vector_search(state, kind, vec, allowed)
            vector = self._floor(vector, self._text_floor(state, kind), cfg.vector_margin)
            if kind == "image" and cfg.image_text_weight > 0:  # words → image: also the words on the image
                vector = self._with_printed(state, kind, vec, vector, text, allowed, titles=False,
                                            weight=cfg.image_text_weight, min_score=self._text_floor(state, kind),
                                            timer=timer)
        if negative:
            with timer.stage("lexical"):
                avoid = self._avoid(state, negative)
            lexical = [(key, s) for key, s in lexical if key not in avoid]
            vector = [(key, s) for key, s in vector if key not in avoid]
        if mode == "hybrid":
            return fuse(vector, lexical, cfg.hybrid) if vector and lexical else (vector or lexical)
        return lexical if mode == "lexical" else vector

    def _avoid(self, state: _State, negative: str) -> set[int]:
        """Products a "without X" query leaves out: BM25 matches of X, and titles with a word starting with X's
        words ("without print" also drops "Printed Tshirt"; BM25 does not stem)."""
        avoid = {key for key, _ in state.version.lexical().search(negative, self.config.candidates * 5)}
        stems = [w for w in re.findall(r"\w+", negative.lower()) if len(w) >= 3]
        if stems:
            pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, stems)) + ")")
            avoid.update(p.key for p in state.table.products if pattern.search(p.title.lower()))
        return avoid

    def _text_vector(self, text: str, negative: str) -> np.ndarray:
        enc = self.encoder()
        if not negative:
            return _encode_text(enc, text)
        return _unit(_encode_text(enc, text) - self.config.negative_weight * _encode_text(enc, negative))

    def _photo(self, state: _State, image: Image.Image, text: str, negative: str, weight: float | None,
               allowed, timer: _Timer) -> Ranking:
        """A photo alone: nearest product photos above the photo floor. With text ("like this, but in blue"): late
        fusion, each candidate scored w * cos(photo, product photo) + (1 - w) * cos(text, product text), so the text
        speaks to product texts (where it is understood best) and the photo to product photos. A hit must match
        the photo or the words on its own (each part above its floor); the blend only orders them. (A floor on the
        blended score would ask a one-word text to match as well as a whole title does, and drop look-alikes.)"""
        cfg = self.config
        w = cfg.image_weight if weight is None else weight
        if not 0.0 <= w <= 1.0:
            raise BadInput("image_weight must lie between 0 and 1")
        enc = self.encoder()
        with timer.stage("encode"):
            photo_vec = enc.encode_images([image])[0]
            text_vec = self._text_vector(text, negative) if text else None
        photo_words = self._photo_words(image, timer) if text_vec is None else ""
        with timer.stage("vector_search"):
            by_photo = self._vector_search(state, cfg.image_kind, photo_vec, allowed)
            if text_vec is None and not photo_words:
                ranking = self._floor(by_photo, cfg.min_image_score)
            elif text_vec is None:
                ranking = self._with_printed(state, cfg.image_kind, photo_vec, by_photo, photo_words, allowed,
                                             titles=True, weight=cfg.photo_text_weight,
                                             min_score=cfg.min_image_score, timer=timer)
            else:
                by_text = self._vector_search(state, "text", text_vec, allowed)
                keys = list(dict.fromkeys([k for k, _ in by_photo] + [k for k, _ in by_text]))
                photo_sims = self._similarities(state, cfg.image_kind, photo_vec, keys)
                text_sims = self._similarities(state, "text", text_vec, keys)
                text_floor = self._text_floor(state, "text")
                ranking = sorted(((k, w * photo_sims[k] + (1.0 - w) * text_sims[k]) for k in keys
                                  if k in photo_sims and k in text_sims
                                  and (photo_sims[k] >= cfg.min_image_score or text_sims[k] >= text_floor)),
                                 key=lambda kv: -kv[1])
        if negative:
            with timer.stage("lexical"):
                avoid = self._avoid(state, negative)
            ranking = [(key, s) for key, s in ranking if key not in avoid]
        return ranking

    def _photo_words(self, image: Image.Image, timer: _Timer) -> str:
        """The words read on a query photo ('' when reading is off, `read_text` or `photo_text_weight` 0, or
        nothing legible was read: such a photo is answered by its look alone, as before reading existed)."""
        if self.settings.read_text == "off" or self.config.photo_text_weight <= 0:
            return ""
        with timer.stage("read_text"):
            reading = (self._text_reader or load_reader()).read_image(image, turn=False)
        return " ".join(w for line in reading.lines for w in words(line.text))

    def _printed(self, state: _State) -> PrintedIndex:
        if state.printed is None:
            with self._lock:
                if state.printed is None:
                    state.printed = PrintedIndex.load(self.store, state.table)
        return state.printed

    def _with_printed(self, state: _State, kind: str, vec: np.ndarray, ranking: Ranking, text: str, allowed, *,
                      titles: bool, weight: float, min_score: float, timer: _Timer) -> Ranking:
        """`ranking` (cosines of `vec` with `kind` vectors) fused with the trigram match of `text` against the
        products' printed words (and titles, with `titles`): search.printed.fuse_printed. Products that only
        the words found get their cosine computed here."""
        cfg = self.config
        with timer.stage("printed_match"):
            match = self._printed(state).match(text, titles=titles)
            if allowed is not None:
                allowed_set = set(allowed.tolist())
                match = {k: s for k, s in match.items() if k in allowed_set}
            if not match:
                return ranking
            scores = dict(ranking)
            missing = [k for k, s in match.items() if k not in scores and s >= cfg.photo_text_min]
            scores.update(self._similarities(state, kind, vec, missing))
            return fuse_printed(scores, match, weight=weight, min_match=cfg.photo_text_min, min_visual=min_score)

    def _similarities(self, state: _State, kind: str, vec: np.ndarray, keys: list[int]) -> dict[int, float]:
        """Cosine of `vec` with the stored `kind` vectors of `keys`."""
        stored = self._stored_vectors(state, kind, keys)
        return {key: float(np.dot(v, vec)) for key, v in stored.items()}

    def _similar(self, state: _State, product_id: str, allowed, timer: _Timer) -> Ranking:
        facts = state.table.by_id.get(product_id)
        if facts is None:
            raise NotFound(f"no product with id {product_id!r}")
        kind = self.config.similar_kind
        with timer.stage("encode"):
            vec = self._stored_vectors(state, kind, [facts.key]).get(facts.key)
        if vec is None:
            raise NotFound(f"product {product_id!r} has no {kind} vector in index version {state.version.name}",
                           hint="Re-run `shoplens index` to embed it.")
        with timer.stage("vector_search"):
            ranking = self._vector_search(state, kind, vec, allowed, extra=1)
        return self._floor([(key, s) for key, s in ranking if key != facts.key], self.config.min_image_score)

    # --- building blocks -----------------------------------------------------------------------------------
    def _text_floor(self, state: _State, kind: str) -> float:
        return self.config.text_floor(kind, state.version.manifest.get("score_floors", {}))

    @staticmethod
    def _floor(ranking: Ranking, min_score: float, margin: float | None = None) -> Ranking:
        """Hits at or above the absolute floor and, for text, within `margin` of the best hit (a nonsense query
        scores low everywhere and keeps few; a clear one drops the long tail of weak matches)."""
        if not ranking:
            return ranking
        floor = min_score if margin is None else max(min_score, ranking[0][1] - margin)
        return [(key, s) for key, s in ranking if s >= floor]

    def _vector_search(self, state: _State, kind: str, vec: np.ndarray, allowed, *, extra: int = 0) -> Ranking:
        """Top candidates of one kind; `allowed` (keys) restricts the search inside FAISS."""
        index = state.version.index(kind)
        k = min(self.config.candidates + extra, index.ntotal)
        if k <= 0:
            return []
        query = np.ascontiguousarray(vec.reshape(1, -1), dtype=np.float32)
        if allowed is None:
            scores, keys = index.search(query, k)
        else:
            if len(allowed) == 0:
                return []
            if state.version.manifest["kinds"][kind]["type"] != "flat" and len(allowed) <= EXACT_FILTERED_MAX:
                exact = _exact_among(index, query[0], np.asarray(allowed, dtype=np.int64), k)
                if exact is not None:
                    return exact
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            scores, keys = index.search(query, min(k, len(allowed)), params=_search_params(index, selector))
        return [(int(key), float(s)) for key, s in zip(keys[0], scores[0]) if key >= 0]

    def _lexical(self, state: _State, text: str, allowed) -> Ranking:
        lexical = state.version.lexical()
        if allowed is None:
            return lexical.search(text, self.config.candidates)
        allowed_set = set(allowed.tolist())
        hits = lexical.search(text, self.config.candidates * 8)
        return [(key, s) for key, s in hits if key in allowed_set][: self.config.candidates]

    def _stored_vectors(self, state: _State, kind: str, keys: list[int]) -> dict[int, np.ndarray]:
        """Vectors of `keys` from the FAISS file (exact and HNSW indexes keep them), else from the database."""
        if kind not in state.version.manifest["kinds"]:
            return {}
        index = state.version.index(kind)
        try:
            vecs = index.reconstruct_batch(np.asarray(keys, dtype=np.int64)) if len(keys) else []
            return {int(key): vec for key, vec in zip(keys, vecs)}
        except RuntimeError:  # IVF-PQ without a direct map, or a key missing from this version
            pass
        by_key = {state.table.by_key[k].id: k for k in keys if k in state.table.by_key}
        with self.store.session() as session:
            rows = session.execute(select(Embedding.product_id, Embedding.vector).where(
                Embedding.product_id.in_(list(by_key)), Embedding.kind == kind,
                Embedding.model == state.version.manifest.get("model"))).all()
        return {by_key[r.product_id]: np.frombuffer(r.vector, dtype=np.float32) for r in rows}

    def _page(self, state: _State, ranking: Ranking, query: Query, *, kind: str, mode: str, text: str,
              negative: str, timer: _Timer) -> SearchResult:
        with timer.stage("metadata"):
            hits = [Hit(state.table.by_key[key], score) for key, score in ranking if key in state.table.by_key]
            if self.config.collapse if query.collapse is None else query.collapse:
                hits = collapse(hits, vectors=lambda keys: self._stored_vectors(state, "image", keys),
                                threshold=self.config.duplicate_cosine)
            facets = state.table.facets(h.product.key for h in hits)
            start = (query.page - 1) * query.k
            page_hits = hits[start:start + query.k]
        return SearchResult(hits=page_hits, total=len(hits), page=query.page, k=query.k, facets=facets,
                            index_version=state.version.name, kind=kind, mode=mode, text=text, negative=negative,
                            timings=timer.seconds)

    def suggest(self, prefix: str, n: int = 8) -> list[dict]:
        """Phrases for the search box that start with (or have a word starting with) `prefix`."""
        state = self.state()
        if state.suggester is None:
            state.suggester = Suggester(state.table)
        return state.suggester.suggest(prefix, n)

    # --- product facts -------------------------------------------------------------------------------------
    def product(self, product_id: str) -> dict:
        """Everything the product page shows: the catalog facts, image facts and the approved copy, if any."""
        with self.store.session() as session:
            product = session.get(Product, product_id)
            if product is None or product.status != "active":
                raise NotFound(f"no product with id {product_id!r}")
            image = session.get(ProductImage, product_id)
            printed = printed_lines(session, [product.image_hash]).get(product.image_hash, [])
            approved = session.execute(
                select(CopyVersion).where(CopyVersion.product_id == product_id, CopyVersion.status == "approved")
                .order_by(CopyVersion.version.desc()).limit(1)).scalar_one_or_none()
            return {
                "id": product.id, "title": product.title, "description": product.description,
                "brand": product.brand, "category": product.category, "colour": product.colour,
                "gender": product.gender, "price": product.price, "currency": product.currency,
                "attributes": product.attributes or {},
                "image": ({"format": image.format, "width": image.width, "height": image.height}
                          if image is not None else None),
                "has_image": bool(product.image_ref),
                "printed_text": printed,
                "copy": ({"version": approved.version, "text": approved.text, "bullets": approved.bullets or [],
                          "seo_title": approved.seo_title} if approved is not None else None),
            }

    def image_ref(self, product_id: str) -> str:
        """Where the product's image bytes are (a path or ARCHIVE.zip#MEMBER recorded at ingestion)."""
        with self.store.session() as session:
            ref = session.execute(select(Product.image_ref).where(
                Product.id == product_id, Product.status == "active")).scalar_one_or_none()
        if not ref:
            raise NotFound(f"product {product_id!r} has no image")
        return ref

    def status(self) -> dict:
        """Counts and the published version, as `shoplens status --json` reports them."""
        state = self.state()
        manifest = state.version.manifest
        kinds = manifest.get("kinds", {})
        first = kinds.get(self.config.hybrid_kind) or next(iter(kinds.values()), {})
        return {"products": len(state.table),
                "index": {"version": state.version.name, "vectors": manifest.get("count"),
                          "type": first.get("type"), "model": manifest.get("model"), "kinds": sorted(kinds)},
                "search": {"hybrid": self.config.hybrid, "text_mode": self.config.text_mode,
                           "text_score_floors": {kind: self._text_floor(state, kind) for kind in sorted(kinds)}}}


@lru_cache(maxsize=4096)
def _encode_text(encoder, text: str) -> np.ndarray:
    """A text's vector, cached: shoppers repeat queries (and suggestions), and encoding is most of a query's time."""
    vec = encoder.encode_texts([text])[0]
    vec.setflags(write=False)
    return vec


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else vec.astype(np.float32)


def _exact_among(index: faiss.Index, query: np.ndarray, allowed: np.ndarray, k: int) -> Ranking | None:
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


def _search_params(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """Search parameters carrying an id selector, of the type the (inner) index expects."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(inner.hnsw.efSearch, 128))
    elif isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=max(inner.nprobe, 16))
    else:
        params = faiss.SearchParameters(sel=selector)
    return params  # the caller keeps `selector` alive while the search runs
