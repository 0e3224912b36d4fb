"""The copywriter as one object for the CLI and the web app: store, facts (+ image), model, versions.

The model and the encoder load on first use, once per process; generation is serialised on the model's lock.
"""
from __future__ import annotations

import logging
import threading
from typing import Iterator

from indexer.config import Settings
from indexer.store import CopyVersion, Store, open_store
from web.copywriter.facts import (DEFAULT_VISUAL_THRESHOLD, CopyFacts, VisualReader, facts_from_product, load_facts,
                                  visual_reader)
from web.copywriter.generate import CopyDraft, Copywriter
from web.copywriter.llm import load_llm
from web.copywriter.phrasebook import PhraseBook
from web.copywriter.prompt import CopyOptions
from web.copywriter.style import StyleLibrary
from web.copywriter.versions import known_brands, recent_texts, save_draft

log = logging.getLogger(__name__)


class CopyService:
    """Grounded copy for products in one store."""

    def __init__(self, settings: Settings, *, store: Store | None = None, llm_spec: str | None = None,
                 vision: bool = True, visual_threshold: float = DEFAULT_VISUAL_THRESHOLD) -> None:
        self.settings = settings
        self.store = store or open_store(settings.db_url)
        self.llm_spec = llm_spec or settings.llm_spec
        self.vision = vision
        self.visual_threshold = visual_threshold
        self._writer: Copywriter | None = None
        self._reader: VisualReader | None = None
        self._engine = None  # search.engine.SearchEngine, made on the first style-example lookup
        self._lock = threading.Lock()

    @property
    def writer(self) -> Copywriter:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    llm = load_llm(self.llm_spec, cache_dir=self.settings.model_cache_dir,
                                   weights=self.settings.llm_weights)
                    phrases = PhraseBook()
                    with self.store.session() as s:
                        brands = known_brands(s)
                        phrases.seed((text, facts_from_product(p)) for text, p in recent_texts(s))
                    self._writer = Copywriter(llm, brands, StyleLibrary(self.store, self.similar_products), phrases)
        return self._writer

    def similar_products(self, product_id: str, k: int) -> list[str]:
        """The products our search finds most like `product_id` (NoIndex before the home has a published index)."""
        from search.engine import SearchEngine

        if self._engine is None:
            self._engine = SearchEngine(self.settings, store=self.store)
        return [hit.product.id for hit in self._engine.similar(product_id, k=k).hits]

    @property
    def reader(self) -> VisualReader | None:
        if self.vision and self._reader is None:
            with self._lock:
                if self._reader is None:
                    self._reader = visual_reader(self.settings, threshold=self.visual_threshold)
                    self.vision = self._reader is not None
        return self._reader

    def facts(self, product_ids: list[str]) -> list[CopyFacts]:
        """Database facts of each product (with the text read on its image), plus visual attributes when an encoder
        is available."""
        with self.store.session() as s:
            found = [load_facts(s, pid) for pid in product_ids]
        reader = self.reader
        return found if reader is None else [reader.enrich(facts) for facts in found]

    def _params(self, draft: CopyDraft, facts: CopyFacts, extra: dict | None) -> None:
        draft.params.update({"visual_attributes": [v.__dict__ for v in facts.visual],
                             "printed_names": facts.printed_names,
                             "visual_threshold": self.visual_threshold if self.vision else None, **(extra or {})})

    def generate(self, product_ids: list[str], options: CopyOptions, *, author: str | None = None,
                 extra_params: dict | None = None) -> list[tuple[CopyDraft, CopyVersion]]:
        """Write, check and store copy for a batch of products (one batched pass on the model)."""
        facts_list = self.facts(product_ids)
        drafts = self.writer.write(facts_list, options)
        stored = []
        for draft, facts in zip(drafts, facts_list):
            self._params(draft, facts, extra_params)
            stored.append((draft, save_draft(self.store, draft, author=author)))
        return stored

    def stream(self, product_id: str, options: CopyOptions, *,
               author: str | None = None) -> Iterator[str | tuple[CopyDraft, CopyVersion]]:
        """Text pieces as the model writes them, then the checked, stored version."""
        facts = self.facts([product_id])[0]
        for item in self.writer.stream(facts, options):
            if isinstance(item, CopyDraft):
                self._params(item, facts, None)
                yield item, save_draft(self.store, item, author=author)
            else:
                yield item
