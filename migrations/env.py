"""Alembic environment: the URL comes from the config (set by indexer.store) or SHOPLENS_DB."""
from __future__ import annotations

import os

from alembic import context

from indexer.store import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SHOPLENS_DB")
    if not url:
        raise SystemExit("set SHOPLENS_DB (e.g. sqlite:///.shoplens/shoplens.db) or use `shoplens migrate`")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
