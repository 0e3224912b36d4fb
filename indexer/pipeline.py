"""`shoplens index CATALOG` from start to end: under the home's run lock, ingest the catalog (`indexer.ingest`),
optionally prune, publish a version (`indexer.publish`) and drop vectors no kept version uses (`indexer.cleanup`).
"""
from __future__ import annotations

import time
from pathlib import Path

from indexer.catalog import parse_mapping
from indexer.cleanup import drop_stale_embeddings
from indexer.config import Settings
from indexer.errors import BadInput
from indexer.ingest import Indexer, IndexOptions, RunSummary
from indexer.locking import run_lock
from indexer.publish import multilingual_encoder, publish_from_store
from indexer.store import open_store

__all__ = ["IndexOptions", "RunSummary", "run_index"]


def run_index(settings: Settings, options: IndexOptions) -> RunSummary:
    """`shoplens index CATALOG`: ingest, optionally prune, publish; bad rows are recorded, never fatal."""
    started = time.monotonic()
    if not Path(options.catalog).is_file():  # fail before loading the model
        raise BadInput(f"catalog {options.catalog} not found", hint="Give the path of a .csv or .jsonl file.")
    parse_mapping(options.mapping)
    with run_lock(settings.home):
        store = open_store(settings.db_url, migrate=True)
        indexer = Indexer(settings, options, store)
        try:
            indexer.ingest()
            if options.prune:
                indexer.prune()
            name, manifest, published = publish_from_store(store, settings.index_dir, indexer.encoder,
                                                           settings.index_memory_budget_mb,
                                                           multilingual=multilingual_encoder(settings),
                                                           progress=options.progress)
            drop_stale_embeddings(store, settings.index_dir)
        except BaseException:
            indexer.finish("failed", started)
            raise
        s = indexer.summary
        s.version, s.published, s.vectors, s.index_type = (name, published, manifest["count"],
                                                           manifest["kinds"]["fused"]["type"])
        indexer.finish("done", started)
        return s
