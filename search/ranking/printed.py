"""Ranking by the words printed on products: a query photo's text (or a text query) against what was read on the
product images, by character trigrams (search.printed_index), fused with the visual score.

Why trigrams, on both sides: the photo's words and the catalogue image's words are both OCR output, misread in
different letters ("MELLANMUOLA" / "MELLANMJOLK"); a product's title and brand join its printed words for photo
queries because a shelf photo often shows the brand more clearly than the small catalogue image does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from indexer.config import SearchSettings
from search.query import Ranking
from search.timing import StageTimer
from search.vectors import similarities

if TYPE_CHECKING:
    from search.state import IndexState


def fuse_printed(visual: dict[int, float], match: dict[int, float], *, weight: float, min_match: float,
                 min_visual: float) -> Ranking:
    """visual + weight * text match for every candidate of either; a hit must pass the visual floor or match the
    words by at least `min_match` (so a product the photo's words name is found even when it looks unlike its
    catalogue image). Keys missing from `visual` score 0 visually."""
    keys = set(visual) | {k for k, s in match.items() if s >= min_match}
    scored = ((k, visual.get(k, 0.0) + weight * match.get(k, 0.0)) for k in keys
              if visual.get(k, 0.0) >= min_visual or match.get(k, 0.0) >= min_match)
    return sorted(scored, key=lambda kv: (-kv[1], kv[0]))


def with_printed(state: IndexState, config: SearchSettings, kind: str, vec: np.ndarray, ranking: Ranking, text: str,
                 allowed: np.ndarray | None, *, titles: bool, weight: float, min_score: float,
                 timer: StageTimer) -> Ranking:
    """`ranking` (cosines of `vec` with `kind` vectors) fused with the trigram match of `text` against the products'
    printed words (and titles, with `titles`) by `fuse_printed`; unchanged when no product's words match. Products
    only the words found get their cosine computed here."""
    with timer.stage("printed_match"):
        match = state.printed.match(text, titles=titles)
        if allowed is not None:
            allowed_set = set(allowed.tolist())
            match = {k: s for k, s in match.items() if k in allowed_set}
        if not match:
            return ranking
        scores = dict(ranking)
        missing = [k for k, s in match.items() if k not in scores and s >= config.photo_text_min]
        scores.update(similarities(state, kind, vec, missing))
        return fuse_printed(scores, match, weight=weight, min_match=config.photo_text_min, min_visual=min_score)
