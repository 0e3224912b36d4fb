"""Shared fixtures: an empty database (`db_url`: SQLite, and PostgreSQL when SHOPLENS_TEST_PG_URL is set), the
real test index (`real_home`) and the web app and client on it (`app`, `client`).

The real test index: 300 Myntra products (with their photos, spread over the catalog's product types) plus the
81-product grocery catalog, built once per test process through the real `shoplens index` command with the options
README.md documents. SHOPLENS_TEST_SEARCH_HOME names a home that an earlier process built, to skip the build.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from indexer_data import GROCERY, GROCERY_MAP, MYNTRA, MYNTRA_MAP, index_catalog, myntra_spread, shoplens, write_csv

PG_URL = os.environ.get("SHOPLENS_TEST_PG_URL")


def _postgres_database() -> str:
    """A fresh database on the test server, so each test starts empty."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"shoplens_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


_BACKENDS = [pytest.param("sqlite", id="sqlite"),
             pytest.param("postgres", id="postgres", marks=[
                 pytest.mark.postgres,
                 pytest.mark.skipif(not PG_URL, reason="set SHOPLENS_TEST_PG_URL (scripts/start-postgres.sh)")])]


@pytest.fixture(params=_BACKENDS)
def db_url(request, tmp_path) -> str:
    """A database URL for an empty database: SQLite always, PostgreSQL when SHOPLENS_TEST_PG_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shoplens.db'}"
        return
    url = _postgres_database()
    try:
        yield url
    finally:
        from indexer.store import make_engine

        make_engine(url).dispose()
        _drop_postgres_database(url)


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The home folder of the real test index (built by the first test that asks, then shared by the process)."""
    reuse = os.environ.get("SHOPLENS_TEST_SEARCH_HOME")
    if reuse and (Path(reuse) / "index" / "CURRENT").is_file():
        return Path(reuse)
    home = Path(tempfile.mkdtemp(prefix="shoplens-search-test-"))
    shoplens(home, "migrate")
    rows, fields = myntra_spread()
    catalog = write_csv(home / "myntra_subset.csv", rows, fields)
    index_catalog(home, GROCERY / "products.csv", GROCERY_MAP)
    index_catalog(home, catalog, MYNTRA_MAP, "--images-root", str(MYNTRA))
    return home


@pytest.fixture(scope="module")
def app(real_home):
    """The web app on the real test index, without rate limiting (one per test module)."""
    from web.app import create_app

    return create_app({"home": real_home, "rate_limit_per_minute": 0})


@pytest.fixture
def client(app):
    return app.test_client()
