"""`shoplens publish-copy`: put approved copy into search now, without re-reading the catalog.

The lexical index is built from the store (title, facts, description and approved copy) when an index version
is published; the version's fingerprint includes the approved copy, so this publishes a new version only when
approvals changed since the current one (same vectors, new BM25 documents), through the indexer's own
atomic publish. `shoplens index CATALOG` does the same as part of a normal run.
"""
from __future__ import annotations

import click

from indexer.config import settings_of
from indexer.publish import republish


@click.command("publish-copy")
@click.pass_context
def publish_copy_command(ctx: click.Context) -> None:
    """Publish a new index version whose lexical index includes the approved copy (if approvals changed)."""
    name, published = republish(settings_of(ctx))
    click.echo(f"published {name} with the approved copy" if published else f"{name} already has the approved copy")
