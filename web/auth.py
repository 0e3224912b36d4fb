"""The API key that guards every writing endpoint: `Authorization: Bearer $SHOPLENS_API_KEY`.

No credentials: 401. With no key configured, writing endpoints are switched off (403) rather than open: a server
started without a key must not let strangers write.
"""
from __future__ import annotations

import functools
import hmac
from collections.abc import Callable

from flask import current_app, request

from web.errors import error_response


def check_api_key():
    """None when the request carries the configured key, else the error response to return."""
    expected = current_app.config["SHOPLENS"].api_key
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return error_response(401, "unauthorized", "this endpoint needs `Authorization: Bearer <API key>`",
                              headers={"WWW-Authenticate": 'Bearer realm="shoplens"'}, force_json=True)
    if not expected:
        return error_response(403, "writes_disabled", "writing endpoints are off: the server has no API key; "
                              "set SHOPLENS_API_KEY and restart it", force_json=True)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return error_response(401, "unauthorized", "the API key is wrong",
                              headers={"WWW-Authenticate": 'Bearer realm="shoplens", error="invalid_token"'},
                              force_json=True)
    return None


def require_api_key(view: Callable) -> Callable:
    """Decorator for writing endpoints; the OpenAPI generator marks decorated views as needing bearerAuth."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        refused = check_api_key()
        return refused if refused is not None else view(*args, **kwargs)

    wrapper.requires_api_key = True
    return wrapper
