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
    return weighted_blend([vector, lexical], [alpha, 1.0 - alpha])


def weighted_blend(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """sum_i w_i * (ranking i's min-max normalised score); a key missing from a ranking gets 0 there."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for key, score in _normalise(ranking).items():
            fused[key] = fused.get(key, 0.0) + weight * score
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse(vector: Ranking, lexical: Ranking, spec: str, *, multilingual: Ranking = (),
         multilingual_share: float = 0.0) -> Ranking:
    """Fuse a vector and a lexical ranking by the method `spec` names (see `parse_hybrid`); a `multilingual`
    ranking (indexer.multilingual) takes `multilingual_share` of the total weight, the other two the rest in the
    spec's proportion."""
    method, value, weight = parse_hybrid(spec)
    if multilingual_share <= 0:
        multilingual = ()
    rest = 1.0 - multilingual_share
    if method == "rrf":
        return rrf([vector, lexical, list(multilingual)], k=int(value),
                   weights=[rest, rest * weight, multilingual_share * (1.0 + weight)])
    return weighted_blend([vector, lexical, multilingual], [rest * value, rest * (1.0 - value), multilingual_share])
