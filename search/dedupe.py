"""Near-duplicate collapse: one card per look, so a page is not ten copies of the same product shot.

Two hits are duplicates when their image bytes are identical, or when they carry the same title (ignoring case
and spacing) and their image vectors are nearly identical (the same photo re-encoded or re-cropped). The
better-ranked one stays; the others are listed under it. It works on per-product codes of the title and the image
bytes (`ProductTable.duplicate_codes`), so a query folds its few hundred hits without making a card for each:
only the page's hits become cards.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def collapse(keys: Sequence[int], titles: Sequence[int], images: Sequence[int], *,
             vectors: Callable[[list[int]], dict[int, np.ndarray]] | None = None,
             threshold: float = 0.97) -> list[tuple[int, list[int]]]:
    """Fold duplicates into the best-ranked hit of each group, keeping rank order. `keys`, `titles` and `images`
    describe the ranked hits (a title code, an image-bytes code, negative for none); returns, per hit kept, its
    position and the positions folded into it."""
    kept: list[tuple[int, list[int]]] = []
    by_image: dict[int, list[int]] = {}
    by_title: dict[int, list[tuple[int, list[int]]]] = {}
    repeated = _repeated(titles)
    vecs = vectors([int(k) for k, t in zip(keys, titles) if t in repeated]) if vectors and repeated else {}
    for pos, (key, title, image) in enumerate(zip(keys, titles, images)):
        if image >= 0 and image in by_image:
            by_image[image].append(pos)
            continue
        twin = None
        vec = vecs.get(int(key))
        if vec is not None:
            for other, folded in by_title.get(title, ()):
                other_vec = vecs.get(int(keys[other]))
                if other_vec is not None and float(np.dot(vec, other_vec)) >= threshold:
                    twin = folded
                    break
        if twin is not None:
            twin.append(pos)
            continue
        entry = (pos, [])
        kept.append(entry)
        if image >= 0:
            by_image[image] = entry[1]
        by_title.setdefault(title, []).append(entry)
    return kept


def _repeated(titles: Sequence[int]) -> set[int]:
    seen: set[int] = set()
    repeated: set[int] = set()
    for t in titles:
        (repeated if t in seen else seen).add(t)
    return repeated
