"""The query engine: routes a query (text, photo, photo + text, more-like-this, or browse) over the CURRENT index
version to its ranking function (`search.ranking`), times each stage, and pages the ranking into a SearchResult.

A text query runs the lexical ranker (BM25) and a vector search and fuses them (hybrid, `SearchSettings.hybrid`);
a photo query searches image vectors with the photo's vector, nudged by any text ("like this, but in blue") and
pushed away from any negative text. Filters restrict the vector search inside FAISS (an id selector), so a narrow
filter still fills a page; facets count over every hit that passes the score floor. Each stage is timed so
the API can export where the time goes.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from indexer.config import MULTILINGUAL_KIND, SCENE_MODES, SearchSettings, Settings
from indexer.errors import BadInput, NotFound, WeightsUnavailable
from indexer.reading import TextReader, load_reader
from indexer.reading.stored import printed_readings
from indexer.reading.words import terms
from indexer.store import Store, open_store
from indexer.vectors import IndexReader
from search import product_reader
from search.ask.answer import Answer, answer_photo, answer_product
from search.ask.caption import Caption, caption_of
from search.ask.questions import check_question
from search.ask.reads import NEIGHBOURS, Neighbour
from search.dedupe import collapse
from search.filters import Filters
from search.products import ProductCard, ProductTable
from search.query import Hit, Query, Ranking, SearchResult, split_negative
from search.ranking.floors import text_floor
from search.ranking.photo import rank_photo
from search.ranking.scene import SceneRanking, detect_scene, rank_scene
from search.ranking.similar import rank_similar
from search.ranking.text import rank_text
from search.state import IndexState
from search.timing import StageTimer
from search.vectors import stored_vectors, vector_search

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder
    from indexer.model.multilingual import MultilingualEncoder

log = logging.getLogger(__name__)


class SearchEngine:
    """Answers queries against the published index; safe to share between threads of one process."""

    def __init__(self, settings: Settings, config: SearchSettings | None = None, *, store: Store | None = None,
                 text_reader: TextReader | None = None) -> None:
        self.settings = settings
        self._text_reader = text_reader  # reads query photos' words; None: the process's (indexer.reading)
        self.config = config or settings.search
        self.store = store or open_store(settings.db_url)
        self.reader = IndexReader(settings.index_dir)
        self._state: IndexState | None = None
        self._lock = threading.Lock()
        self._multilingual_missing: str | None = None  # the model a version wants that could not be loaded
        # A second model's encode runs here beside the request's thread (a hybrid query's e5 encode beside the main
        # text encode): ONNX Runtime and the e5 engine (ctypes) release the GIL, so an idle server uses two cores.
        self._beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoplens-beside") \
            if self.config.encode_beside else None

    # --- index version and model -------------------------------------------------------------------------
    def state(self) -> IndexState:
        """The current version and its product facts, reloaded when CURRENT changes."""
        version = self.reader.current()
        state = self._state
        if state is None or state.version is not version:
            with self._lock:
                if self._state is None or self._state.version is not version:
                    self._state = IndexState(version, ProductTable.load(self.store, version.path), self.store)
                state = self._state
        return state

    def encoder(self) -> Encoder:
        """The encoder the current index was built with (loaded once per process); see `load_version_encoder`."""
        from indexer.model.encoder import load_version_encoder

        return load_version_encoder(self.state().version.manifest, default_spec=self.settings.model_spec,
                                    cache_dir=self.settings.model_cache_dir, runtime=self.settings.inference)

    def multilingual(self) -> MultilingualEncoder | None:
        """The multilingual text model the current version's multilingual vectors were made with (loaded once per
        process), or None: a version without them, or a model this machine can't load (logged once; text
        queries are then answered without it rather than failing)."""
        from indexer.model.multilingual import load_multilingual

        spec = self.state().version.manifest["kinds"].get(MULTILINGUAL_KIND)
        if spec is None or spec["model"] == self._multilingual_missing:
            return None
        try:
            return load_multilingual(spec["model"], cache_dir=self.settings.model_cache_dir,
                                     runtime=self.settings.inference)
        except WeightsUnavailable as exc:
            log.warning("searching without the multilingual vectors: %s", exc)
            self._multilingual_missing = spec["model"]
            return None

    def warm_up(self) -> str:
        """Load the index, the product facts and the model, run both towers once (the first run of a runtime
        session allocates its buffers) and start building the lookups queries need, so no shopper's first
        text or photo query pays for them; returns the index version."""
        state = self.state()
        encoder = self.encoder()
        encoder.encode_texts(["warm up"])
        encoder.encode_images([Image.new("RGB", (64, 64), "white")])
        if (multilingual := self.multilingual()) is not None:
            multilingual.encode_queries(["warm up"])
        for kind in {self.config.hybrid_kind, self.config.image_kind, self.config.similar_kind, MULTILINGUAL_KIND}:
            if kind in state.version.manifest["kinds"]:
                state.version.index(kind)
        state.version.lexical()
        threading.Thread(target=self._lookups, args=(state,), name="shoplens-warm-up", daemon=True).start()
        return state.version.name

    def _lookups(self, state: IndexState) -> None:
        """Build what a worker's first queries would otherwise wait for: the title and image codes every query's
        near-duplicate folding compares, and for photo queries (23-36 s at 100k products) the printed-word index
        they consult and the image vectors' moments a scene is scored against.
        On a thread of its own, so text queries are answered meanwhile and a big catalog's worker still starts
        within gunicorn's timeout; a photo query that comes first waits for the same build, as it did before."""
        try:
            state.table.duplicate_codes  # noqa: B018 (a cached property, like `printed`)
            if self.settings.read_text != "off":
                state.printed  # noqa: B018 (a cached property: built here, once)
            if self.config.scene != "off":
                try:
                    state.moments(self.config.image_kind)
                except RuntimeError:  # an index that keeps no vectors (IVF-PQ): scenes use the candidates' spread
                    pass
        except Exception:  # the query that needs it builds it again and reports the error itself
            log.exception("building the photo lookups of %s failed", state.version.name)

    # --- queries -------------------------------------------------------------------------------------------
    def search(self, query: Query) -> SearchResult:
        """Answer a text, photo, photo + text, or more-like-this query, or browse the filtered catalog."""
        if query.k < 1 or query.page < 1:
            raise BadInput("k and page must be at least 1")
        cfg = self.config
        timer = StageTimer()
        state = self.state()
        text, negative = split_negative(query.text or "")
        negative = " ".join(filter(None, [negative, (query.negative or "").strip()]))
        with timer.stage("metadata"):
            allowed = state.table.allowed_keys(query.filters)
        if query.like is not None:
            kind, mode = "similar", cfg.similar_kind
            ranking = rank_similar(state, cfg, query.like, allowed, timer)
        elif query.image is not None and (scene := self._scene(state, query, text, allowed, timer)) is not None:
            kind, mode, ranking = "scene", cfg.image_kind, scene.ranking
        elif query.image is not None:
            kind, mode = ("image+text" if text else "image"), cfg.image_kind
            photo_words = self._photo_words(state, query.image, timer)
            ranking = rank_photo(state, cfg, self.encoder, query.image, text, negative, query.image_weight, allowed,
                                 timer, photo_words)
        elif text:
            kind, mode = "text", query.mode or cfg.text_mode
            ranking = rank_text(state, cfg, self.encoder, text, negative, mode, allowed, timer, self.multilingual,
                                self._beside)
        else:  # no query: browse the (filtered) catalog
            kind, mode = "browse", "filters"
            keys = allowed if allowed is not None else state.table.keys
            ranking = [(int(key), 0.0) for key in keys[: cfg.candidates]]
        result = self._page(state, ranking, query, kind=kind, mode=mode, text=text, negative=negative, timer=timer)
        if kind == "scene":
            result.regions, result.photo_size = scene.regions, (scene.width, scene.height)
            for hit in result.hits:
                hit.region = scene.region_of.get(hit.product.key)
        return result

    def _scene(self, state: IndexState, query: Query, text: str, allowed: np.ndarray | None,
               timer: StageTimer) -> SceneRanking | None:
        """The photo searched region by region when it is a scene (`scene` on, or auto and `detect_scene` says so),
        else None: a product photo, or a photo with words, is answered as a photo alone always was."""
        setting = query.scene or self.config.scene
        if setting not in SCENE_MODES:
            raise BadInput(f"scene must be one of {', '.join(SCENE_MODES)}")
        if setting == "off" or text:
            if setting == "on":
                raise BadInput("a scene photo is searched alone: leave out the text, or set scene to auto or off")
            return None
        known = None
        if setting == "auto":
            with timer.stage("encode"):
                known = detect_scene(self.encoder(), query.image, self.config.scene_threshold,
                                     self.config.scene_plain_border)
            if known is None:
                return None
        return rank_scene(state, self.config, self.encoder, query.image, allowed, timer, known)

    def _photo_words(self, state: IndexState, image: Image.Image, timer: StageTimer) -> str:
        """The words read on a query photo ('' when reading is off, `read_text` or `photo_text_weight` 0, or
        nothing legible was read: such a photo is answered by its look alone, as before reading existed). With
        `read_text` auto the photo is read only where the catalog's products carry text (the share `auto` reads
        a catalog at): a fashion catalog's photo queries don't pay for reading (p50 187 ms against ~50)."""
        if self.settings.read_text == "off" or self.config.photo_text_weight <= 0:
            return ""
        if self.settings.read_text == "auto" and not state.printed.carries_text:
            return ""
        with timer.stage("read_text"):
            lines = self.read_photo(image)
        return " ".join(w for text, _ in lines for w in terms(text))

    def read_photo(self, image: Image.Image) -> list[tuple[str, float]]:
        """The lines read on a shopper's photo, each with the reader's confidence."""
        reading = (self._text_reader or load_reader()).read_image(image, turn=False)
        return [(line.text, line.confidence) for line in reading.lines]

    def similar(self, product_id: str, *, k: int = 10, page: int = 1, filters: Filters | None = None) -> SearchResult:
        """Products that look like `product_id` (itself excluded)."""
        return self.search(Query(like=product_id, k=k, page=page, filters=filters or Filters()))

    def _page(self, state: IndexState, ranking: Ranking, query: Query, *, kind: str, mode: str, text: str,
              negative: str, timer: StageTimer) -> SearchResult:
        """The page `query` asks for, near-duplicates folded, with facets over every hit of the ranking."""
        table = state.table
        with timer.stage("metadata"):
            keys = np.fromiter((key for key, _ in ranking), dtype=np.int64, count=len(ranking))
            rows = table.rows_of(keys)
            known = np.flatnonzero(rows >= 0)
            keys, rows = keys[known], rows[known]
            scores = [ranking[i][1] for i in known]
            if self.config.collapse if query.collapse is None else query.collapse:
                titles, images = table.duplicate_codes
                groups = collapse(keys, titles[rows], images[rows], threshold=self.config.duplicate_cosine,
                                  vectors=lambda wanted: stored_vectors(state, "image", wanted))
            else:
                groups = [(pos, []) for pos in range(len(keys))]
            facets = table.facets(keys[[pos for pos, _ in groups]])
            start = (query.page - 1) * query.k
            page_hits = [Hit(table.card(int(rows[pos])), scores[pos],
                             duplicates=[table.columns.string("id", int(rows[d])) for d in folded])
                         for pos, folded in groups[start:start + query.k]]
        return SearchResult(hits=page_hits, total=len(groups), page=query.page, k=query.k, facets=facets,
                            index_version=state.version.name, kind=kind, mode=mode, text=text, negative=negative,
                            timings=timer.seconds)

    def suggest(self, prefix: str, n: int = 8) -> list[dict]:
        """Phrases for the search box that start with (or have a word starting with) `prefix`."""
        return self.state().suggester.suggest(prefix, n)

    # --- questions and captions (search.ask) ---------------------------------------------------------------
    def ask(self, product_id: str, question: str, *, image_only: bool = False) -> Answer:
        """Answer a question about a product from its facts (hidden with `image_only`), photo or printed text."""
        text = check_question(question, self.settings.max_query_chars)
        state = self.state()
        card = self._card(state, product_id)
        facts = None if image_only else self.product(product_id)
        vector = self._image_vector(state, card)
        return answer_product(text, state.vocabulary, self.encoder, vector, facts,
                              self._printed(state, [card]).get(card.image_hash or "", []),
                              self._neighbours(state, vector, card))

    def ask_photo(self, image: Image.Image, question: str) -> Answer:
        """Answer a question about a photo of anything, from its reads, its words and the closest products."""
        text = check_question(question, self.settings.max_query_chars)
        state = self.state()
        vector = self.encoder().encode_images([image])[0]
        ranking = vector_search(state.version, self.config.image_kind, vector, None, NEIGHBOURS)
        closest = [(state.table.by_key[k], s) for k, s in ranking[:3]
                   if k in state.table.by_key and s >= self.config.min_image_score]
        return answer_photo(text, state.vocabulary, self.encoder(), vector, closest, lambda: self.read_photo(image),
                            state.vocabulary.neighbours(ranking))

    def caption(self, product_id: str) -> Caption:
        """The caption of a product's image (its stored vector and the lines read on it)."""
        state = self.state()
        card = self._card(state, product_id)
        vector = self._image_vector(state, card)
        if vector is None:
            raise NotFound(f"product {product_id!r} has no image to caption")
        printed = [t for t, _ in self._printed(state, [card]).get(card.image_hash or "", [])]
        return caption_of(state.vocabulary, self.encoder(), vector, printed, self._neighbours(state, vector, card))

    def caption_photo(self, image: Image.Image) -> Caption:
        """The caption of a shopper's photo (read for words too unless reading is off)."""
        state = self.state()
        vector = self.encoder().encode_images([image])[0]
        printed = [t for t, _ in self.read_photo(image)] if self.settings.read_text != "off" else []
        return caption_of(state.vocabulary, self.encoder(), vector, printed, self._neighbours(state, vector))

    def captions(self, cards: list[ProductCard]) -> dict[str, str]:
        """Alt texts of product images by product id, made once per image (by sha256) and index version."""
        state = self.state()
        todo = [c for c in cards if c.has_image and c.image_hash and c.image_hash not in state.captions]
        if todo:
            vectors = stored_vectors(state, "image", [c.key for c in todo])
            printed = self._printed(state, todo)
            for card in todo:
                if card.key in vectors:
                    lines = [t for t, _ in printed.get(card.image_hash or "", [])]
                    vector = vectors[card.key]
                    state.captions[card.image_hash] = caption_of(
                        state.vocabulary, self.encoder(), vector, lines, self._neighbours(state, vector, card)).caption
        return {c.id: state.captions[c.image_hash] for c in cards if c.image_hash in state.captions}

    @staticmethod
    def _card(state: IndexState, product_id: str) -> ProductCard:
        card = state.table.by_id.get(product_id)
        if card is None:
            raise NotFound(f"no product with id {product_id!r}")
        return card

    def _neighbours(self, state: IndexState, vector: np.ndarray | None,
                    card: ProductCard | None = None) -> list[Neighbour]:
        """The nearest other catalog products by photo, with their facts (they vote in a visual read)."""
        if vector is None:
            return []
        ranking = vector_search(state.version, self.config.image_kind, vector, None, NEIGHBOURS + 1)
        return state.vocabulary.neighbours(ranking, exclude=[card.key] if card is not None else [])

    @staticmethod
    def _image_vector(state: IndexState, card: ProductCard) -> np.ndarray | None:
        return stored_vectors(state, "image", [card.key]).get(card.key) if card.has_image else None

    @staticmethod
    def _printed(state: IndexState, cards: list[ProductCard]) -> dict[str, list[tuple[str, float]]]:
        with state.store.session() as session:
            return printed_readings(session, [c.image_hash for c in cards])

    # --- products and status -------------------------------------------------------------------------------
    def product(self, product_id: str) -> dict:
        """Everything the product page shows (`search.product_reader.product_page`)."""
        return product_reader.product_page(self.store, product_id)

    def image_ref(self, product_id: str) -> str:
        """Where the product's image bytes are (a path or ARCHIVE.zip#MEMBER recorded at ingestion)."""
        return product_reader.image_ref(self.store, product_id)

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
                           "text_score_floors": {kind: text_floor(self.config, state.version, kind)
                                                 for kind in sorted(kinds)}}}
