"""Run evaluation queries through the search engine, one mode at a time, and score them.

The engine is reached through `Backend`, one call per query, so the numbers are those of the code shoppers use
(filters, score floors and fusion included). Latency is wall time per call, split by query type, after a
few untimed warm-up calls per query type and mode (model load and caches are not a query's cost).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from tqdm import tqdm

from indexer.config import VECTOR_KINDS
from indexer.errors import BadInput
from search.evaluation.metrics import METRICS, PerQuery, compare_to_baseline, judged_queries, mean_scores, per_query_scores
from search.evaluation.trec import Qrels, Query, RunDict

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = (*VECTOR_KINDS, "lexical", "hybrid")  # the order reports list them in
DEFAULT_MODE = "default"  # what plain search uses; the engine decides per query type
QUERY_TYPES: tuple[str, ...] = ("text", "image", "combined")
WARM_UP = 5  # untimed queries per type before each mode is timed


class Backend(Protocol):
    """Answers one evaluation query: ranked (product id, score) pairs, best first."""

    def __call__(self, query: Query, mode: str | None, k: int) -> list[tuple[str, float]]: ...


@dataclass
class ModeResult:
    """One mode's rankings, per-query scores, latencies and the queries it could not answer."""

    mode: str
    run: RunDict
    per_query: PerQuery
    latency_ms: dict[str, float]
    unsupported: dict[str, str] = field(default_factory=dict)  # query id -> why (e.g. lexical with a photo)

    def summary(self, queries: Sequence[Query]) -> dict:
        """The interfaces.md JSON shape for this mode, plus a breakdown per query type."""
        types = {q.id: q.type for q in queries}
        scored = list(next(iter(self.per_query.values()), {}).keys())
        out = {"n_queries": len(scored), "metrics": mean_scores(self.per_query),
               "latency_ms": latency_summary(list(self.latency_ms.values())), "by_type": {}}
        for qtype in QUERY_TYPES:
            ids = [q for q in scored if types.get(q) == qtype]
            if ids:
                out["by_type"][qtype] = {
                    "n_queries": len(ids), "metrics": mean_scores(self.per_query, ids),
                    "latency_ms": latency_summary([self.latency_ms[q] for q in ids if q in self.latency_ms]),
                    "unsupported": sum(1 for q in ids if q in self.unsupported)}
        if self.unsupported:
            out["unsupported"] = len(self.unsupported)
        return out


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds (zeros for an empty list, so the JSON shape never changes)."""
    if not values_ms:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0}
    arr = np.asarray(values_ms, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)), "mean": float(arr.mean())}


def warm_up(backend: Backend, queries: Sequence[Query], mode: str | None, k: int, per_type: int = WARM_UP) -> None:
    """Untimed calls with the first few queries of each type: model load, lazy indexes and caches are not a
    query's cost (one call was not enough: the first mode measured came out several times slower)."""
    seen: dict[str, int] = {}
    for q in queries:
        if seen.get(q.type, 0) < per_type:
            seen[q.type] = seen.get(q.type, 0) + 1
            try:
                backend(q, mode, k)
            except BadInput:
                pass


def run_mode(backend: Backend, queries: Sequence[Query], qrels: Qrels, mode: str, k: int,
             metrics: Sequence[str] = METRICS, progress: bool = True) -> ModeResult:
    """Answer every query in one mode and score the rankings."""
    engine_mode = None if mode == DEFAULT_MODE else mode
    run: RunDict = {}
    latency: dict[str, float] = {}
    unsupported: dict[str, str] = {}
    warm_up(backend, queries, engine_mode, k)
    for q in tqdm(queries, desc=f"eval {mode}", unit="q", disable=not progress, leave=False):
        start = time.perf_counter()
        try:
            ranking = backend(q, engine_mode, k)
        except BadInput as exc:  # a mode that cannot answer this kind of query (lexical with a photo only)
            unsupported[q.id] = str(exc)
            ranking = []
        else:
            latency[q.id] = (time.perf_counter() - start) * 1000.0
        run[q.id] = ranking[:k]
    if unsupported:
        log.warning("mode %s could not answer %d of %d queries (e.g. %s: %s); they score 0", mode,
                    len(unsupported), len(queries), *next(iter(unsupported.items())))
    return ModeResult(mode, run, per_query_scores(qrels, run, metrics), latency, unsupported)


def align(queries: Sequence[Query], qrels: Qrels) -> list[Query]:
    """Keep the queries that have judgements; say what is left out on either side."""
    judged = set(judged_queries(qrels))
    kept = [q for q in queries if q.id in judged]
    if len(kept) < len(queries):
        log.warning("%d queries have no relevant product in the qrels and are not scored", len(queries) - len(kept))
    orphans = judged - {q.id for q in queries}
    if orphans:
        log.warning("%d judged query ids are not in the queries file (e.g. %s)", len(orphans), sorted(orphans)[0])
    if not kept:
        raise BadInput("no query in the queries file has a relevant product in the qrels.",
                       hint="Check that the two files belong together (same query ids).")
    return kept


@dataclass
class Evaluation:
    """Every mode's results on one query set, and the significance of each against the baseline."""

    queries: list[Query]
    results: dict[str, ModeResult]
    baseline: str
    test: str
    p_values: dict[str, dict[str, float]]

    def to_json(self) -> dict:
        """interfaces.md shape for the baseline at the top level, every mode under "modes"."""
        modes = {name: r.summary(self.queries) for name, r in self.results.items()}
        top = modes[self.baseline]
        return {"n_queries": top["n_queries"], "metrics": top["metrics"], "latency_ms": top["latency_ms"],
                "mode": self.baseline, "modes": modes,
                "significance": {"baseline": self.baseline, "test": self.test, "p_values": self.p_values}}


def evaluate(backend: Backend, queries: Sequence[Query], qrels: Qrels, modes: Sequence[str], *, k: int = 50,
             baseline: str | None = None, test: str = "student", progress: bool = True) -> Evaluation:
    """Run each mode over the judged queries; p-values of each mode against `baseline` (default: the first)."""
    kept = align(queries, qrels)
    # Judged ids that no query asks for are not scored: only a query that was run and missed counts as 0.
    qrels = {q.id: qrels[q.id] for q in kept}
    baseline = baseline or modes[0]
    if baseline not in modes:
        raise BadInput(f"--baseline {baseline} is not among the modes run ({', '.join(modes)}).")
    results = {mode: run_mode(backend, kept, qrels, mode, k, progress=progress) for mode in modes}
    p_values = compare_to_baseline({m: r.per_query for m, r in results.items()}, baseline, test)
    return Evaluation(kept, results, baseline, test, p_values)
