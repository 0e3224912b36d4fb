"""The objects the views share, one set per app: the database, the search engine and the copy service.

`create_app` puts one `Services` in `app.extensions["shoplens"]`; views reach it through `services()`. Each object
is built on first use, once per app and thread-safely, so a gunicorn worker loads the model once, and a page that
needs only the database never opens the index. This module imports no view, so every view imports it at its top.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, overload

from flask import Flask, current_app

from indexer.config import Settings
from indexer.store import Store, open_store
from search.engine import SearchEngine
from web.copywriter.service import CopyService

T = TypeVar("T")


class built_on_first_use(Generic[T]):
    """A `Services` attribute built by the decorated method on first read, once, under the services' lock.

    Assigning the attribute replaces the object (a test's own copy service): the value then sits in the
    instance and is read without the lock, as a built one is.
    """

    def __init__(self, build: Callable[[Services], T]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, services: None, owner: type) -> built_on_first_use[T]: ...

    @overload
    def __get__(self, services: Services, owner: type | None = None) -> T: ...

    def __get__(self, services: Services | None, owner: type | None = None) -> T | built_on_first_use[T]:
        if services is None:
            return self
        with services._lock:
            if self._name not in services.__dict__:
                services.__dict__[self._name] = self._build(services)
        return services.__dict__[self._name]


class Services:
    """What the views of one app need, built on first use (thread-safe); one store serves them all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()  # re-entrant: building the engine reads the store

    @built_on_first_use
    def store(self) -> Store:
        """The app's database (the eval pages read it directly)."""
        return open_store(self.settings.db_url)

    @built_on_first_use
    def engine(self) -> SearchEngine:
        """The search engine: index versions are mapped and the model loads on the first query."""
        return SearchEngine(self.settings, store=self.store)

    @built_on_first_use
    def copy(self) -> CopyService:
        """The copywriter: its language model loads on the first generation."""
        return CopyService(self.settings, store=self.store)


def services(app: Flask | None = None) -> Services:
    """The services of `app`, or of the app handling the current request."""
    return (app or current_app).extensions["shoplens"]
