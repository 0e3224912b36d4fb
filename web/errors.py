"""One error shape for the whole service: `{"error": {"code": .., "message": ..}}` with the right status.

API paths (and any client that asks for JSON) get JSON; the shopper's pages get an HTML page that says what to
do. Bad input is never a 500: `ShopLensError` carries its status, Werkzeug's HTTP errors keep theirs, and only a
real bug reaches the catch-all (logged with its traceback, answered without one).
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from indexer.errors import ShopLensError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/healthz", "/metrics", "/images/", "/uploads/")

# What a shopper should do about each status, shown on the HTML error page.
ADVICE = {
    400: "Check what you typed or the photo you chose, then try again.",
    401: "This needs an API key.",
    404: "The page or product isn't here any more. Try a new search.",
    413: "The photo is too large. Choose a smaller one (under a few megabytes) and try again.",
    415: "That file isn't a photo we can read. Use a JPEG, PNG, WebP or GIF image.",
    429: "You're searching faster than we can answer. Wait a few seconds and try again.",
    503: "Search isn't ready yet (the catalog is still being indexed). Try again in a minute.",
}


def wants_json() -> bool:
    """Whether the current request should get a JSON error rather than an HTML page."""
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   force_json: bool = False) -> Response:
    """The error as JSON (API) or as the HTML error page (shopper's pages)."""
    if force_json or wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        response = Response(render_template("error.html", status=status, code=code, message=message,
                                            advice=ADVICE.get(status, "Go back and try again.")),
                            mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _code_of(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn every failure into the one error shape."""

    @app.errorhandler(ShopLensError)
    def _shoplens_error(exc: ShopLensError):
        status = exc.http_status
        if status >= 500:  # not ready (no index, unmigrated database, no weights): unavailable, not a bug
            log.warning("%s: %s", exc.code, exc)
            status = 503
        message = f"{exc.message.rstrip('.')}. {exc.hint}" if exc.hint else exc.message
        return error_response(status, exc.code, message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return error_response(413, "request_too_large",
                              f"the request body is over the {limit:,}-byte limit; send a smaller photo"
                              if limit else "the request body is too large")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after", "www-authenticate")}
        return error_response(exc.code or 500, _code_of(exc), exc.description or exc.name, headers=headers)

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
