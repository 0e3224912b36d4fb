"""The products' printed words as search matches them: per index version, trigram indexes (indexer.reading.words)
over each product's title, brand and printed words, and over its printed words alone (search.ranking.printed
ranks with them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.reading.policy import AUTO_MIN_TEXT_SHARE
from indexer.reading.stored import printed_lines
from indexer.reading.words import TrigramIndex
from indexer.store import Store
from search.products import ProductTable


@dataclass(frozen=True)
class PrintedIndex:
    """Per index version: each product's printed lines, and trigram indexes over (title, brand, printed words)
    and over the printed words alone."""

    keys: np.ndarray
    lines: dict[int, list[str]]
    with_titles: TrigramIndex
    on_image: TrigramIndex

    @classmethod
    def load(cls, store: Store, table: ProductTable) -> "PrintedIndex":
        products = list(table.products)  # cards made once, for this build only
        with store.session() as session:
            by_hash = printed_lines(session, (p.image_hash for p in products))
        lines = {p.key: by_hash[p.image_hash] for p in products if p.image_hash in by_hash}
        printed = [" ".join(lines.get(p.key, ())) for p in products]
        titled = [" ".join(filter(None, (p.title, p.brand, text))) for p, text in zip(products, printed)]
        return cls(table.keys, lines, TrigramIndex(titled), TrigramIndex(printed))

    @property
    def carries_text(self) -> bool:
        """Whether this catalog's products carry printed text: at least the share of products with words at which
        `--read-text auto` reads a catalog. Where they don't, the few words a sample read must not rank."""
        return len(self.lines) >= AUTO_MIN_TEXT_SHARE * max(1, len(self.keys))

    def match(self, text: str, *, titles: bool) -> dict[int, float]:
        """Products whose words share trigrams with `text`: key → cosine (0, 1]."""
        scores = (self.with_titles if titles else self.on_image).scores(text)
        hits = np.flatnonzero(scores > 0)
        return {int(self.keys[i]): float(scores[i]) for i in hits}
