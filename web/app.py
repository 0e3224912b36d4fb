"""The Flask application factory. Importing this module builds nothing; `create_app(config)` builds an app.

Heavy things (database, index, model) load on first use through the app's `Services` (web/services.py), once
per app, so a gunicorn worker loads the model once and every worker maps the same index files.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, request

from indexer.config import Settings, load_settings
from web.api import bp as api
from web.ask_api import bp as ask_api
from web.copy_api import bp as copy_api
from web.errors import register_error_handlers
from web.eval_pages import bp as eval_pages
from web.metrics import install_metrics
from web.pages import bp as pages
from web.ratelimit import install_rate_limit
from web.services import Services


def blueprints() -> list[Blueprint]:
    """Every blueprint the app serves. A new area adds its blueprint here (an import and one line)."""
    return [
        api,
        pages,
        eval_pages,
        copy_api,
        ask_api,
    ]


def _settings(config: Settings | Mapping[str, Any] | None) -> Settings:
    """Settings as given, or loaded with a mapping's values as overrides (`search` may be a mapping too); an
    unknown key is a ConfigError, so a misspelt setting is never ignored."""
    if isinstance(config, Settings):
        return config
    overrides = dict(config or {})
    return load_settings(home=overrides.pop("home", None), db_url=overrides.pop("db_url", None), **overrides)


def install_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """CORS for the API, only for the configured origins (off by default)."""
    if not origins:
        return
    allowed = set(origins)

    @app.after_request
    def _cors(response):
        origin = request.headers.get("Origin")
        if request.path.startswith("/api/") and origin and ("*" in allowed or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = origin if "*" not in allowed else "*"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Vary"] = "Origin"
        return response


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the ShopLens web app: JSON API under /api/v1, the shopper's pages, /healthz and /metrics."""
    settings = _settings(config)
    app = Flask(__name__)
    app.config.update(SHOPLENS=settings, MAX_CONTENT_LENGTH=settings.max_request_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["shoplens"] = Services(settings)
    register_error_handlers(app)
    install_rate_limit(app, settings.rate_limit_per_minute)
    install_metrics(app)
    install_cors(app, settings.cors_origins)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return app
