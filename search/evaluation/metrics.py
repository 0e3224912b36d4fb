"""Retrieval metrics through ranx, and paired significance tests between two systems.

Metric names are spelled as ranx / trec_eval spell them (interfaces.md). Rankings are handed to ranx with
scores derived from their rank, so ties in the engine's scores never reorder what the engine returned.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from search.evaluation.trec import Qrels

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("recall@1", "recall@5", "recall@10", "recall@50", "mrr@10", "ndcg@10", "map")
RECALL_CURVE_KS: tuple[int, ...] = (1, 5, 10, 50)  # the Recall@K of METRICS, plotted as a curve
STAT_TESTS = ("student", "fisher")

PerQuery = dict[str, dict[str, float]]  # metric -> query id -> score


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids with at least one relevant product: recall is undefined for the others."""
    return sorted(qid for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values()))


def per_query_scores(qrels: Qrels, run: Mapping[str, Sequence[tuple[str, float]]],
                     metrics: Sequence[str] = METRICS) -> PerQuery:
    """Score every judged query (a query missing from `run` scores 0) with ranx."""
    from ranx import Qrels as RQrels, Run as RRun, evaluate

    qids = judged_queries(qrels)
    if not qids:
        return {m: {} for m in metrics}
    rq = RQrels({qid: {pid: int(rel) for pid, rel in qrels[qid].items()} for qid in qids})
    ranked = {}
    for qid in qids:
        ranking = run.get(qid, [])
        n = len(ranking)
        ranked[qid] = {pid: float(n - i) for i, (pid, _) in enumerate(ranking)}
    if not any(ranked.values()):  # nothing retrieved at all (ranx cannot build such a run): every query scores 0
        return {m: {qid: 0.0 for qid in qids} for m in metrics}
    scores = evaluate(rq, RRun(ranked), list(metrics), return_mean=False)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    # ranx orders queries by id internally (sorted typed lists); keep that mapping explicit.
    order = sorted(qids)
    return {m: {qid: float(v) for qid, v in zip(order, np.asarray(scores[m]))} for m in metrics}


def mean_scores(per_query: PerQuery, qids: Sequence[str] | None = None) -> dict[str, float]:
    """Average per-query scores, over `qids` when given (e.g. one query type)."""
    out = {}
    for m, values in per_query.items():
        vals = [values[q] for q in (qids if qids is not None else values) if q in values]
        out[m] = float(np.mean(vals)) if vals else 0.0
    return out


def paired_test(baseline: Mapping[str, float], other: Mapping[str, float], test: str = "student",
                *, n_permutations: int = 2000, seed: int = 42) -> float:
    """p-value of a paired test (Student's t or Fisher's randomisation) on the queries both systems scored."""
    from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test

    qids = sorted(set(baseline) & set(other))
    if len(qids) < 2:
        return 1.0
    a = np.array([baseline[q] for q in qids], dtype=np.float64)
    b = np.array([other[q] for q in qids], dtype=np.float64)
    if np.allclose(a, b):
        return 1.0
    if test == "student":
        p, _ = paired_student_t_test(a, b, 0.05)
    elif test == "fisher":
        p, _ = fisher_randomization_test(a, b, n_permutations, 0.05, seed)
    else:
        raise ValueError(f"unknown test {test!r}; use one of {STAT_TESTS}")
    return float(p)


def compare_to_baseline(per_query: Mapping[str, PerQuery], baseline: str, test: str = "student",
                        metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """p-values of every system against `baseline`, per metric: system -> metric -> p."""
    return {name: {m: paired_test(per_query[baseline][m], scores[m], test) for m in metrics}
            for name, scores in per_query.items() if name != baseline}
