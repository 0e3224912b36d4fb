"""Ranking metrics on a dense score matrix, for model training and quality checks (no index involved).

`search/evaluation` scores runs of the real engine with ranx; these score an encoder alone, where every query
is compared with every candidate, so a matrix is simpler and exact.
"""
from __future__ import annotations

import numpy as np


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k (share of a query's relevant candidates in its top k, averaged) and MRR@10.

    scores: (queries, candidates); relevant: same shape, bool. Queries without a relevant candidate are skipped.
    """
    keep = relevant.any(1)
    scores, relevant = scores[keep], relevant[keep]
    if len(scores) == 0:
        return {**{f"recall@{k}": 0.0 for k in ks}, "mrr@10": 0.0}
    depth = min(max(max(ks), 10), scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
    hits = np.take_along_axis(relevant, order, 1)
    n_rel = relevant.sum(1)
    out = {f"recall@{k}": float((hits[:, :k].sum(1) / n_rel).mean()) for k in ks}
    first = np.where(hits[:, :10].any(1), hits[:, :10].argmax(1) + 1, np.inf)
    out["mrr@10"] = float((1.0 / first).mean())
    return out
