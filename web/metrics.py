"""Prometheus metrics at /metrics: request latency per endpoint, and query latency split by stage.

Stages: encode (query to vector), regions (a scene photo's crops proposed), vector_search (FAISS), lexical
(BM25), metadata (filters, facets, product facts) and render (JSON or HTML). The query-encoding cache's hits, misses and entries (`shoplens_query_cache_*`)
say whether repeated queries skip the model. With several gunicorn workers, `shoplens serve` sets
PROMETHEUS_MULTIPROC_DIR and /metrics merges every worker's numbers.
"""
from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from search.ranking.text import query_cache_info

STAGES = ("encode", "regions", "vector_search", "lexical", "metadata", "render")
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's metrics, in a registry of their own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage = Histogram("shoplens_stage_seconds", "Time spent in one stage of answering a query",
                               ["stage", "kind"], buckets=BUCKETS, registry=self.registry)
        self.request = Histogram("shoplens_request_seconds", "Request latency by endpoint",
                                 ["endpoint", "method"], buckets=BUCKETS, registry=self.registry)
        self.responses = Counter("shoplens_responses", "Responses by endpoint and status",
                                 ["endpoint", "status"], registry=self.registry)
        # Gauges set from the cache's own counts (functools keeps them); livesum adds up the live workers.
        self.cache = {field: Gauge(f"shoplens_query_cache_{field}", f"Query-encoding cache: {meaning}",
                                   registry=self.registry, multiprocess_mode="livesum")
                      for field, meaning in (("hits", "queries answered without the model"),
                                             ("misses", "queries encoded by the model"),
                                             ("entries", "encodings held"))}

    def observe_cache(self) -> None:
        """Copy this process's query-cache counts into the gauges."""
        info = query_cache_info()
        for field, value in (("hits", info.hits), ("misses", info.misses), ("entries", info.size)):
            self.cache[field].set(value)

    def observe_stages(self, timings: dict[str, float], kind: str) -> None:
        for stage, seconds in timings.items():
            if stage in STAGES:
                self.stage.labels(stage=stage, kind=kind).observe(seconds)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def install_metrics(app: Flask) -> Metrics:
    """Time every request and serve /metrics."""
    metrics = Metrics()
    app.extensions["shoplens.metrics"] = metrics

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _record(response):
        started = g.pop("started", None)
        endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
        if started is not None:
            metrics.request.labels(endpoint=endpoint, method=request.method).observe(time.perf_counter() - started)
        metrics.responses.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        metrics.observe_cache()
        return response

    @app.get("/metrics")
    def prometheus_metrics():
        metrics.observe_cache()
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    return metrics
