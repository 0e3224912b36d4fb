"""Near-duplicate collapse: one card per look, so a page is not ten copies of the same product shot.

Two hits are duplicates when their image bytes are identical, or when they carry the same title (ignoring case
and spacing) and their image vectors are nearly identical (the same photo re-encoded or re-cropped). The
better-ranked one stays; the others are listed under it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from search.query import Hit


def collapse(hits: Sequence[Hit], *, vectors: Callable[[list[int]], dict[int, np.ndarray]] | None = None,
             threshold: float = 0.97) -> list[Hit]:
    """Fold duplicates into the best-ranked hit of each group, keeping rank order."""
    kept: list[Hit] = []
    by_hash: dict[str, Hit] = {}
    by_title: dict[str, list[Hit]] = {}
    titles = [h.product.title_key for h in hits]
    repeated = _repeated(titles)
    vecs = vectors([h.product.key for h, t in zip(hits, titles) if t in repeated]) if vectors and repeated else {}
    for hit, title in zip(hits, titles):
        image_hash = hit.product.image_hash
        if image_hash and image_hash in by_hash:
            by_hash[image_hash].duplicates.append(hit.product.id)
            continue
        twin = None
        vec = vecs.get(hit.product.key)
        if vec is not None:
            for other in by_title.get(title, ()):
                other_vec = vecs.get(other.product.key)
                if other_vec is not None and float(np.dot(vec, other_vec)) >= threshold:
                    twin = other
                    break
        if twin is not None:
            twin.duplicates.append(hit.product.id)
            continue
        kept.append(hit)
        if image_hash:
            by_hash[image_hash] = hit
        by_title.setdefault(title, []).append(hit)
    return kept


def _repeated(titles: list[str]) -> set[str]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for t in titles:
        (repeated if t in seen else seen).add(t)
    return repeated
