"""The BM25 index (bm25s) that search blends with the vectors: exact words such as brands, sizes and colours.

Each indexed document is a product's title, brand, category, colour, attributes, description, its approved
copy and the words printed on its image (indexer.reading). The index is saved in a version's `lexical/` folder
with the product keys in the same order, and loaded memory-mapped.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

import bm25s
import numpy as np

from indexer.reading.words import quantities, word_forms

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build step at DEBUG

_KEYS_FILE = "keys.npy"
_STOPWORDS = "en"


def product_document(title: str, brand: str | None, category: str | None, colour: str | None,
                     attributes: dict | None, description: str | None, approved_copy: Iterable[str] = (),
                     printed: Iterable[str] = ()) -> str:
    """The text BM25 sees for one product (the brand and title come first; order does not change BM25).

    `printed` (the lines read on its image) adds each distinct printed word once, as read and without diacritics
    ("MJÖLK" and "mjolk": OCR keeps or drops them at random), and each printed amount as one token ("1,5%" →
    "1_5pct", as `search` writes the query's): a word found only on the package makes the product findable,
    and weighs no more than one mention in the description, below the title's words, which also appear in the
    brand, category and description."""
    attrs = " ".join(f"{k} {v}" for k, v in (attributes or {}).items())
    printed = list(printed)
    parts = [title, brand, category, colour, attrs, description, *approved_copy,
             " ".join(word_forms(printed) + quantities(" ".join(printed)))]
    return "\n".join(p for p in parts if p)


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords=_STOPWORDS, return_ids=False, show_progress=False)


def build_lexical(keys: Sequence[int], documents: Sequence[str], out_dir: Path) -> dict:
    """Index `documents` (one per product key) into `out_dir`; returns facts for the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / _KEYS_FILE, np.asarray(keys, dtype=np.int64))
    if not documents:
        (out_dir / "empty.json").write_text(json.dumps({"documents": 0}))
        return {"documents": 0}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(documents), stopwords=_STOPWORDS, show_progress=False),
                    show_progress=False)
    retriever.save(str(out_dir), show_progress=False)
    return {"documents": len(documents), "vocabulary": len(retriever.vocab_dict)}


class LexicalIndex:
    """A loaded BM25 index: `search(query, k)` → [(product key, score)], best first, only matching products."""

    def __init__(self, retriever: bm25s.BM25 | None, keys: np.ndarray) -> None:
        self._retriever = retriever
        self._keys = keys

    @classmethod
    def load(cls, path: Path) -> "LexicalIndex":
        keys = np.load(path / _KEYS_FILE, mmap_mode="r")
        if len(keys) == 0:
            return cls(None, keys)
        return cls(bm25s.BM25.load(str(path), mmap=True, show_progress=False), keys)

    def __len__(self) -> int:
        return len(self._keys)

    def coverage(self, query: str) -> float:
        """The share of the query's words (stopwords aside) that this index knows: 1.0 for words of the catalog's
        language, near 0 for a query in another (search weighs the multilingual vectors by it); 0 without words."""
        if self._retriever is None:
            return 0.0
        tokens = _tokenize([query])[0]
        return sum(t in self._retriever.vocab_dict for t in tokens) / len(tokens) if tokens else 0.0

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        if self._retriever is None or k <= 0:
            return []
        # amounts written as the documents' printed ones are ("1,5%" → "1_5pct"; "500 g" also meets a "500g")
        tokens = [t for t in _tokenize([" ".join([query, *quantities(query)])])[0] if t in self._retriever.vocab_dict]
        if not tokens:
            return []
        rows, scores = self._retriever.retrieve([tokens], k=min(k, len(self._keys)), show_progress=False)
        keep = scores[0] > 0
        keys = np.asarray(self._keys[rows[0][keep]])  # one fancy-index read of the memmap, not one per hit
        return list(zip(keys.tolist(), scores[0][keep].astype(float).tolist()))
