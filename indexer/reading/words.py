"""Words read from images, as search matches them.

OCR misreads letters ("MELLANMUOLA" for MELLANMJÖLK, "CRAPEFRUIT") and drops or keeps diacritics at random, so
exact words miss. Matching here is by character trigrams of accent-folded words: a word that shares most of its
trigrams with another still matches it. `TrigramIndex` scores a query text against one document per product by
the cosine of their TF-IDF trigram vectors (a sparse matrix; 81 grocery products or 44,441 Myntra ones alike).
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

_WORD = re.compile(r"[^\W_]+")
_QUANTITY = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?(?:(%)|(kg|mg|g|dl|cl|ml|l|cm|mm|m|oz|st)(?![^\W\d_]))")
MIN_WORD_LETTERS = 3  # "GOD", "EKO" count; "NY", "0" and "1ccx"-like scraps of digits do not


def fold(text: str) -> str:
    """Lower case without diacritics ("MJÖLK" → "mjolk"): OCR keeps or drops them at random."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Folded words of `text` with at least MIN_WORD_LETTERS letters (OCR scraps like "iX7" or "100" drop)."""
    return [w for w in _WORD.findall(fold(text)) if sum(ch.isalpha() for ch in w) >= MIN_WORD_LETTERS]


def word_forms(lines: Iterable[str]) -> list[str]:
    """The distinct words of text lines (MIN_WORD_LETTERS letters or more), each in lower case as written and
    folded where that differs, in reading order: what the lexical index gets of an image's printed text."""
    forms = []
    for line in lines:
        for raw in _WORD.findall(line.lower()):
            if sum(ch.isalpha() for ch in raw) >= MIN_WORD_LETTERS:
                forms += [raw, fold(raw)]
    return list(dict.fromkeys(forms))


def quantities(text: str) -> list[str]:
    """Printed amounts with their unit as one search token each, written one way ("1,5%" and "1.5 %" → "1_5pct",
    "0,5 L" → "0_5l", "500 g" → "500g", "12%FETT" → "12pct"): `words` drops digits, and the tokenisers split at
    the comma or point. Bare numbers without a unit ("100", the "0" read on an apple's skin) are not kept."""
    found = []
    for m in _QUANTITY.finditer(fold(text)):
        number = m.group(1).replace(",", ".")
        number = number.rstrip("0").rstrip(".") if "." in number else number
        found.append(number.replace(".", "_") + ("pct" if m.group(2) else m.group(3)))
    return list(dict.fromkeys(found))


def terms(text: str) -> list[str]:
    """What trigram matching compares: the folded words of `text` and its amounts with units (`quantities`)."""
    return words(text) + quantities(text)


def one_misread(a: str, b: str) -> bool:
    """Whether folded words `a` and `b` are equal, or differ by one misread, dropped or added letter where both
    have 5+ letters ("crapefruit" / "grapefruit"): how an OCR reading of a catalog word is recognised."""
    if a == b:
        return True
    if min(len(a), len(b)) < 5 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def read_catalog_words(lines: Iterable[str], catalog_text: str) -> list[str]:
    """The words of `catalog_text` (as the catalog writes them, in its order, once each) that were read in `lines`
    (folded, tolerating one misread letter): the printed names a copy may state, because the catalog states them."""
    read = set(words(" ".join(lines)))
    found = {}
    for raw in _WORD.findall(catalog_text):
        folded = fold(raw)
        if sum(ch.isalpha() for ch in folded) >= MIN_WORD_LETTERS and folded not in found and any(
                one_misread(folded, w) for w in read):
            found[folded] = raw
    return list(found.values())


def trigrams(word: str) -> list[str]:
    """Character trigrams of one word with boundary marks ("oat" → " oa", "oat", "at ")."""
    padded = f" {word} "
    return [padded[i:i + 3] for i in range(len(padded) - 2)]


class TrigramIndex:
    """TF-IDF trigram vectors of one document per product; `scores(text)` → cosine with every document."""

    def __init__(self, documents: Sequence[str]) -> None:
        counts = [Counter(g for w in terms(doc) for g in trigrams(w)) for doc in documents]
        vocab: dict[str, int] = {}
        for c in counts:
            for g in c:
                vocab.setdefault(g, len(vocab))
        self.vocab = vocab
        df = Counter(g for c in counts for g in c)
        n = max(1, len(documents))
        self.idf = np.zeros(len(vocab), dtype=np.float32)
        for g, i in vocab.items():
            self.idf[i] = math.log((1 + n) / (1 + df[g])) + 1.0
        rows, cols, vals = [], [], []
        for r, c in enumerate(counts):
            for g, tf in c.items():
                rows.append(r)
                cols.append(vocab[g])
                vals.append((1.0 + math.log(tf)) * self.idf[vocab[g]])
        matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(documents), len(vocab)), dtype=np.float32)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        self.matrix = sparse.diags(1.0 / norms) @ matrix

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def scores(self, text: str) -> np.ndarray:
        """Cosine of `text`'s trigram vector with each document's (zeros where nothing is shared)."""
        c = Counter(g for w in terms(text) for g in trigrams(w) if g in self.vocab)
        if not c:
            return np.zeros(len(self), dtype=np.float32)
        idx = np.fromiter((self.vocab[g] for g in c), dtype=np.int64)
        vals = np.fromiter(((1.0 + math.log(tf)) for tf in c.values()), dtype=np.float32) * self.idf[idx]
        vals /= float(np.linalg.norm(vals)) or 1.0
        return np.asarray(self.matrix[:, idx] @ vals).ravel()
