"""`shoplens publish-copy`: put approved copy into search now, without re-reading the catalog.

The lexical index is built from the store (title, facts, description and approved copy) when an index version
is published; the version's fingerprint includes the approved copy, so this publishes a new version only when
approvals changed since the current one (same vectors, new BM25 documents), through the indexer's own
atomic publish. `shoplens index CATALOG` does the same as part of a normal run.
"""
from __future__ import annotations

import click

from indexer.config import Settings
from indexer.errors import NoIndex
from indexer.store import open_store


def publish_approved_copy(settings: Settings) -> tuple[str, bool]:
    """(version name, whether a new version was published) after folding approved copy into the index."""
    from indexer.model.encoder import load_version_encoder
    from indexer.pipeline import publish_from_store, run_lock
    from indexer.vectors import current_version, read_manifest

    name = current_version(settings.index_dir)
    if name is None:
        raise NoIndex("no index version is published yet", hint="Run `shoplens index CATALOG` first.")
    manifest = read_manifest(settings.index_dir, name)
    with run_lock(settings.home):
        store = open_store(settings.db_url)
        encoder = load_version_encoder(manifest, cache_dir=settings.model_cache_dir)
        name, _, published = publish_from_store(store, settings.index_dir, encoder, settings.index_memory_budget_mb)
    return name, published


@click.command("publish-copy")
@click.pass_context
def publish_copy_command(ctx: click.Context) -> None:
    """Publish a new index version whose lexical index includes the approved copy (if approvals changed)."""
    from indexer.config import settings_of

    name, published = publish_approved_copy(settings_of(ctx))
    click.echo(f"published {name} with the approved copy" if published else f"{name} already has the approved copy")
