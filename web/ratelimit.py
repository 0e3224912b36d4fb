"""Per-client rate limit (token bucket per remote address), answering 429 with Retry-After.

Each worker process keeps its own buckets, so with N workers a client gets at most N times the limit: good
enough to stop one client from flooding the service, without a shared store. Health and metrics are exempt so
probes never get throttled.
"""
from __future__ import annotations

import math
import threading
import time

from flask import Flask, request

from web.errors import error_response

EXEMPT_PREFIXES = ("/healthz", "/metrics", "/static/")
MAX_CLIENTS = 50_000


class TokenBuckets:
    """`per_minute` requests a minute per client, with bursts up to `burst`."""

    def __init__(self, per_minute: int, burst: int | None = None, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or max(1, per_minute // 4))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > MAX_CLIENTS:  # forget the idlest clients rather than grow without bound
                for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: MAX_CLIENTS // 10]:
                    del self._buckets[stale]
        return wait


def install_rate_limit(app: Flask, per_minute: int) -> None:
    """Throttle every request except health and metrics; `per_minute <= 0` turns the limit off."""
    if per_minute <= 0:
        return
    buckets = TokenBuckets(per_minute)
    app.extensions["shoplens.ratelimit"] = buckets

    @app.before_request
    def _throttle():
        if request.path.startswith(EXEMPT_PREFIXES):
            return None
        wait = buckets.take(request.remote_addr or "unknown")
        if wait > 0:
            retry = max(1, math.ceil(wait))
            return error_response(429, "rate_limited",
                                  f"too many requests: the limit is {per_minute} a minute; retry in {retry} s",
                                  headers={"Retry-After": str(retry)})
        return None
