"""Rank fusion for hybrid search: combine a lexical (BM25) ranking with vector rankings.

Two methods, chosen by `SearchSettings.hybrid`: reciprocal-rank fusion, which needs no score calibration, and a
weighted blend of per-query normalised scores, which keeps score gaps (a strong exact match stays far ahead).
"""
from __future__ import annotations

from collections.abc import Sequence

from indexer.config import parse_hybrid
from search.query import Ranking


def rrf(rankings: Sequence[Ranking], *, k: int = 60, weights: Sequence[float] | None = None) -> Ranking:
    """Reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1; best first."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (key, _score) in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def _normalise(ranking: Ranking) -> dict[int, float]:
    """Min-max normalise scores to [0, 1] within one query; a single or flat list maps to 1."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    if hi - lo <= 1e-12:
        return {key: 1.0 for key, _ in ranking}
    return {key: (s - lo) / (hi - lo) for key, s in ranking}


def blend(vector: Ranking, lexical: Ranking, *, alpha: float = 0.5) -> Ranking:
    """alpha * normalised vector score + (1 - alpha) * normalised lexical score; missing counts as 0."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must lie in [0, 1]")
    v, lex = _normalise(vector), _normalise(lexical)
    keys = set(v) | set(lex)
    fused = {key: alpha * v.get(key, 0.0) + (1.0 - alpha) * lex.get(key, 0.0) for key in keys}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse(vector: Ranking, lexical: Ranking, spec: str) -> Ranking:
    """Fuse a vector and a lexical ranking by the method `spec` names (see `parse_hybrid`)."""
    method, value, weight = parse_hybrid(spec)
    if method == "rrf":
        return rrf([vector, lexical], k=int(value), weights=[1.0, weight])
    return blend(vector, lexical, alpha=value)
