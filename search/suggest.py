"""Search-box suggestions: phrases shoppers can type, made from the catalog itself (brands, product types,
colour + type, brand + type), ranked by how many products each would find."""
from __future__ import annotations

import bisect
from collections import Counter

import numpy as np

from search.products import ProductTable


class Suggester:
    """Prefix lookup over catalog phrases (counted with numpy over the facts' codes, never product by product);
    phrases that start with the prefix come before those with a word that does."""

    def __init__(self, table: ProductTable) -> None:
        counts: Counter[str] = Counter()
        leaves, leaf = table.codes("category_leaf")
        for names, codes in (table.codes("brand"), (leaves, leaf)):  # a brand alone, a product type alone
            values, n = np.unique(codes[codes >= 0], return_counts=True)
            for value, count in zip(values.tolist(), n.tolist()):
                counts[" ".join(names[value].split())] += count
        for field in ("colour", "brand", "gender"):  # a colour, brand or gender with the type
            names, codes = table.codes(field)
            both = (codes >= 0) & (leaf >= 0)
            combos, n = np.unique(codes[both].astype(np.int64) * len(leaves) + leaf[both], return_counts=True)
            for combo, count in zip(combos.tolist(), n.tolist()):
                counts[" ".join(f"{names[combo // len(leaves)]} {leaves[combo % len(leaves)]}".split())] += count
        self._counts = counts
        self._sorted = sorted((phrase.lower(), phrase) for phrase in counts)
        self._keys = [low for low, _ in self._sorted]

    def suggest(self, prefix: str, n: int = 8) -> list[dict]:
        prefix = " ".join(prefix.lower().split())
        if not prefix:
            return []
        start = bisect.bisect_left(self._keys, prefix)
        found: list[str] = []
        for low, phrase in self._sorted[start:]:
            if not low.startswith(prefix):
                break
            found.append(phrase)
        ranked = sorted(found, key=lambda ph: (-self._counts[ph], ph))[:n]
        if len(ranked) < n:
            inner = [ph for low, ph in self._sorted if f" {prefix}" in f" {low}" and not low.startswith(prefix)]
            ranked += sorted(inner, key=lambda ph: (-self._counts[ph], ph))[: n - len(ranked)]
        return [{"text": ph, "count": self._counts[ph]} for ph in ranked]
