"""The evaluation's way into the search engine: one `SearchEngine.search` call per query and mode.

Modes (interfaces.md): `image`, `text`, `fused` search that kind of product vector; `lexical` is BM25 alone;
`hybrid` fuses BM25 with vectors; `default` is whatever plain search does. A photo query has no words for BM25,
so `lexical` cannot answer it (counted as unsupported, scoring 0); `hybrid` and `default` answer photos as
search does (the configured image kind). A photo + text query in `lexical` mode ranks its text alone.
Near-duplicate collapsing is off unless asked for, so every relevant product can be counted.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from indexer.config import VECTOR_KINDS, Settings
from indexer.errors import BadInput, ConfigError
from search.evaluation.trec import Query



class EngineBackend:
    """Answers evaluation queries through `search.engine.SearchEngine`, one engine per photo-vector kind."""

    def __init__(self, settings: Settings, *, collapse: bool = False) -> None:
        from search.engine import SearchEngine
        from indexer.store import open_store

        self.settings = settings
        self.collapse = collapse
        self._config = settings.search
        self._store = open_store(settings.db_url)
        self._engines: dict[str, SearchEngine] = {}
        self._engine_cls = SearchEngine

    def engine(self, image_kind: str | None = None):
        """The engine whose photo queries search `image_kind` vectors (None: the configured kind)."""
        kind = image_kind or self._config.image_kind
        if kind not in self._engines:
            self._engines[kind] = self._engine_cls(self.settings, replace(self._config, image_kind=kind), store=self._store)
        return self._engines[kind]

    def search_config(self) -> dict:
        """The search settings the numbers depend on (fusion, score floors, vector kinds), stored with the run."""
        from dataclasses import asdict

        return asdict(self._config)

    def index_version(self) -> tuple[str, dict]:
        """(name, manifest) of the published index version; refuses an index the installed model cannot query."""
        engine = self.engine()
        version = engine.state().version
        dim = engine.encoder().dim
        if dim != version.manifest.get("dim"):
            raise ConfigError(f"index version {version.name} holds {version.manifest.get('dim')}-d vectors of model "
                              f"{version.manifest.get('model')}, but the installed model gives {dim}-d vectors.",
                              hint="Re-run `shoplens index` so the index is built with the installed model.")
        return version.name, version.manifest

    def _image(self, path: Path):
        from indexer.images import decode_image

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read query image {path}: {exc}") from exc
        return decode_image(data, max_pixels=self.settings.max_image_pixels, what=f"query image {path.name}")[0]

    def __call__(self, query: Query, mode: str | None, k: int) -> list[tuple[str, float]]:
        from search.filters import Filters
        from search.query import Query as SearchQuery

        filters = Filters.parse(query.filters.items())
        image = self._image(query.image) if query.image else None
        engine = self.engine(mode if mode in VECTOR_KINDS else None)
        if image is not None and mode == "lexical":
            if not query.text:
                raise BadInput("lexical mode cannot answer a photo-only query")
            image = None
        text_mode = mode if image is None else None
        result = engine.search(SearchQuery(text=query.text or "", image=image, filters=filters, k=k, mode=text_mode,
                                           collapse=self.collapse))
        return [(hit.product.id, float(hit.score)) for hit in result.hits]
