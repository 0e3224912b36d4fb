"""One loaded index version as search reads it: the version's files, the product table it is served with and the
store its vectors can be read back from. Every ranking function works over one of these, so a query never mixes
two versions even while a new one is published."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import faiss
import numpy as np

from indexer.config import MULTILINGUAL_KIND
from indexer.store import Store
from indexer.vectors import LoadedVersion
from search.ask.reads import Vocabulary
from search.printed_index import PrintedIndex
from search.products import ProductTable
from search.suggest import Suggester

MOMENT_ROWS = 20_000


@dataclass
class IndexState:
    """The current version with its product table (loaded together, replaced together)."""

    version: LoadedVersion
    table: ProductTable
    store: Store
    _moments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)
    # Captions of product images by image sha256 (search.ask.caption): the alt text of every card, made once.
    captions: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def suggester(self) -> Suggester:
        """Search-box phrases of this version's products, built on the first suggestion asked for."""
        return Suggester(self.table)

    @cached_property
    def printed(self) -> PrintedIndex:
        """The products' printed words (trigram indexes), built on the first query that matches them."""
        return PrintedIndex.load(self.store, self.table)

    @cached_property
    def nonsense_centroid(self) -> np.ndarray | None:
        """Where random strings' multilingual vectors cluster (indexer.calibration), read from the manifest once per
        version rather than per query; None for a version without multilingual vectors or published before it."""
        centroid = self.version.manifest["kinds"].get(MULTILINGUAL_KIND, {}).get("nonsense_centroid")
        return None if centroid is None else np.asarray(centroid, dtype=np.float32)

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The catalog's values per visual topic (search.ask.reads), read on the first question or caption."""
        return Vocabulary.load(self.store, self.table)

    def moments(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The mean and second-moment matrix of this version's `kind` vectors (read once, in chunks of 4,096; in a
        catalog over MOMENT_ROWS, from evenly spread chunks that add up to about that many), so the mean and
        spread of a query's cosines over the whole catalog cost two products, not a scan."""
        if kind not in self._moments:
            inner = self.version.index(kind)
            inner = faiss.downcast_index(inner.index) if isinstance(inner, faiss.IndexIDMap2) else inner
            total, dim = inner.ntotal, inner.d
            stride = max(1, -(-total // MOMENT_ROWS))
            mean, second = np.zeros(dim, dtype=np.float64), np.zeros((dim, dim), dtype=np.float64)
            seen = 0
            for start in range(0, total, 4096 * stride):
                chunk = inner.reconstruct_n(start, min(4096, total - start)).astype(np.float64)
                mean += chunk.sum(axis=0)
                second += chunk.T @ chunk
                seen += len(chunk)
            self._moments[kind] = (mean / max(seen, 1), second / max(seen, 1))
        return self._moments[kind]
