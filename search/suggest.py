"""Search-box suggestions: phrases shoppers can type, made from the catalog itself (brands, product types,
colour + type, brand + type), ranked by how many products each would find."""
from __future__ import annotations

import bisect
from collections import Counter

from search.products import ProductTable


class Suggester:
    """Prefix lookup over catalog phrases; phrases that start with the prefix come before those with a word that does."""

    def __init__(self, table: ProductTable) -> None:
        counts: Counter[str] = Counter()
        for p in table.products:
            leaf = p.category_leaf
            for phrase in (p.brand, leaf,
                           f"{p.colour} {leaf}" if p.colour and leaf else None,
                           f"{p.brand} {leaf}" if p.brand and leaf else None,
                           f"{p.gender} {leaf}" if p.gender and leaf else None):
                if phrase:
                    counts[" ".join(phrase.split())] += 1
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
