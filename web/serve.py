"""`shoplens serve`: the app under gunicorn, several worker processes sharing the memory-mapped index.

Each worker builds its own app after the fork (no preload: torch and forked model state don't mix) and warms up
before taking requests: model loaded once per worker, index files mapped (the OS shares their pages between
workers), product facts read. /healthz then answers 200 with the index version. With several workers the
Prometheus metrics are kept in a shared folder so /metrics reports all of them.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import click

from indexer.config import Settings, settings_of
from indexer.errors import ShopLensError
from indexer.store import open_store

log = logging.getLogger(__name__)


def _gunicorn_app(settings: Settings, options: dict):
    from gunicorn.app.base import BaseApplication  # needed only to serve: not loaded for the other commands

    class ShopLensServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            # Imported in the worker, after the fork: the master never imports the app's views and services.
            from web.app import create_app

            return create_app(settings)

    return ShopLensServer()


def _cores_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _post_worker_init(worker) -> None:
    """Warm the worker: split the cores between workers, load model, index and facts, answer one query."""
    import faiss  # heavy, and needed only in a worker after the fork
    import torch

    from web.services import services

    app = worker.wsgi
    threads = _cores_per_worker(services(app).settings.workers)
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)  # one query at a time gains nothing from OpenMP; its spinning costs
    try:
        engine = services(app).engine
        version = engine.warm_up()
        encoder = engine.encoder()
        multilingual = engine.multilingual()
        log.info("worker %s ready: index version %s, OpenMP threads %s per thread, towers on %s (image %s, "
                 "text %s), multilingual model on %s", worker.pid, version, os.environ.get("OMP_NUM_THREADS"),
                 encoder.runtime, encoder.precision["image"], encoder.precision["text"],
                 multilingual.runtime if multilingual is not None else "none (not in this version)")
    except ShopLensError as exc:  # no index yet: serve anyway, /healthz says 503 until one is published
        log.warning("worker %s started without an index: %s", worker.pid, exc)


def _child_exit(_server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: the `workers` setting, 2).")
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Threads per worker (requests waiting on I/O don't block the worker).")
@click.option("--rate-limit", type=click.IntRange(0, 10_000_000), default=None,
              help="Requests a minute per client and worker (0: off; default 600).")
@click.option("--timeout", type=click.IntRange(10, 3600), default=120, show_default=True,
              help="Seconds before a stuck worker is restarted.")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, workers: int | None, threads: int,
                  rate_limit: int | None, timeout: int) -> None:
    """Serve the web app and the JSON API with gunicorn."""
    settings = settings_of(ctx)
    settings = settings.with_overrides(rate_limit_per_minute=rate_limit, workers=workers)
    open_store(settings.db_url).engine.dispose()  # refuse an unmigrated database before forking anything
    if settings.workers > 1:
        metrics_dir = Path(settings.cache_dir) / f"prometheus-{os.getpid()}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The OpenMP runtimes of torch and FAISS start in each worker with this many threads for every thread, not only
    # the one `_post_worker_init` runs on (OpenMP keeps the count per thread): a request thread's FAISS or torch
    # loop at the core count spun against the other workers, and 8 clients on 2 workers got 2-4 answers a second
    # instead of 54 (bench/RESULTS.md "query"). A value the operator set is kept.
    os.environ.setdefault("OMP_NUM_THREADS", str(_cores_per_worker(settings.workers)))
    options = {
        "bind": f"{host}:{port}", "workers": settings.workers, "threads": threads,
        "worker_class": "gthread", "timeout": timeout, "graceful_timeout": 20, "preload_app": False,
        "post_worker_init": _post_worker_init, "child_exit": _child_exit,
        "accesslog": None, "errorlog": "-", "loglevel": "info",
        "limit_request_line": 8190, "proc_name": "shoplens",
    }
    click.echo(f"serving http://{host}:{port} with {settings.workers} workers (home {settings.home})", err=True)
    _gunicorn_app(settings, options).run()
