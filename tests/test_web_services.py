"""The web app's services (each built once per app, however many threads ask first) and the command line's areas
(each registers its own commands; together they are the `shoplens` commands of interfaces.md)."""
from __future__ import annotations

import threading
import time

import click
import pytest

from indexer import commands as indexer_commands
from indexer.store import open_store
from search import cli as search_commands
from web import commands as web_commands
from web import services as web_services
from web.app import create_app
from web.cli import cli
from web.services import services

AREAS = ((indexer_commands, {"index", "status", "migrate", "train-model", "adapt"}),
         (search_commands, {"search", "similar", "eval", "ask", "caption"}),
         (web_commands, {"serve", "generate", "publish-copy"}))


@pytest.fixture()
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'shoplens.db'}"
    open_store(url, migrate=True).engine.dispose()
    return create_app({"home": tmp_path, "db_url": url})


def test_the_engine_is_built_once_when_many_threads_ask_first(app, monkeypatch):
    built = []

    class SlowEngine:
        def __init__(self, settings, *, store):
            time.sleep(0.05)  # every thread asks while the first build is still running
            self.store = store
            built.append(self)

    monkeypatch.setattr(web_services, "SearchEngine", SlowEngine)
    start = threading.Barrier(8)
    seen = []

    def ask() -> None:
        start.wait()
        seen.append(services(app).engine)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(seen) == 8 and all(engine is built[0] for engine in seen)
    assert built[0].store is services(app).store is services(app).copy.store  # one database pool per app


def test_each_area_registers_its_own_commands():
    for area, names in AREAS:
        group = click.Group()
        area.register(group)
        assert set(group.commands) == names, area.__name__
    assert set(cli.commands) == set().union(*(names for _, names in AREAS))
