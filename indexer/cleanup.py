"""Stale vectors: rows of models that no kept index version was built with."""
from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import delete

from indexer.store import Embedding, Store
from indexer.vectors import read_manifest, version_names

log = logging.getLogger(__name__)


def drop_stale_embeddings(store: Store, index_dir: Path) -> int:
    """Delete the vectors of models that no kept index version was built with; returns how many rows went.

    A model change re-embeds every product under the new model's name, and the old rows would otherwise stay
    forever. The previous version's model is kept, so a rollback can still be re-published from the database."""
    manifests = [read_manifest(index_dir, name) for name in version_names(index_dir)]
    # a version's own model, and any kind's own (the multilingual vectors: indexer.multilingual)
    models = {m.get("model") for m in manifests} | {k.get("model") for m in manifests
                                                    for k in m.get("kinds", {}).values()}
    models -= {None}
    if not models:
        return 0
    with store.session() as s:
        removed = s.execute(delete(Embedding).where(Embedding.model.not_in(models))).rowcount or 0
    if removed:
        log.info("dropped %d vectors of models no kept index version uses", removed)
    return removed
