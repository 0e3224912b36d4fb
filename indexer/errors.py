"""Errors a user can act on.

Every failure that a user (not a programmer) can cause raises a subclass of `ShopLensError`. The CLI prints
`str(error)` on one line and exits 1 (no traceback unless --debug); the HTTP API maps `http_status` and `code`
into `{"error": {"code": .., "message": ..}}`.
"""
from __future__ import annotations


class ShopLensError(Exception):
    """A failure with a message that says what was wrong and what to do."""

    code: str = "error"
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class ConfigError(ShopLensError):
    """Bad settings: an unknown option value, a missing directory, an unmigrated database."""

    code = "config_error"
    http_status = 500


class WeightsUnavailable(ShopLensError):
    """Model weights can't be had: no hub here, a missing package, or a bad local checkpoint."""

    code = "weights_unavailable"
    http_status = 503


class BudgetTooSmall(ConfigError):
    """`index_memory_budget_mb` cannot hold any index of the catalog's vectors; says the smallest that can."""

    code = "budget_too_small"


class BadInput(ShopLensError):
    """A request, catalog row, query or file the user gave is malformed."""

    code = "bad_input"
    http_status = 400


class BadImage(BadInput):
    """An image that is corrupt, truncated, too large or of a format outside the allowlist."""

    code = "bad_image"

    def __init__(self, message: str, *, hint: str | None = None, http_status: int = 400) -> None:
        super().__init__(message, hint=hint)
        self.http_status = http_status


class NotFound(ShopLensError):
    """An unknown product id, copy version, index version or evaluation run."""

    code = "not_found"
    http_status = 404


class NoIndex(ShopLensError):
    """Search was asked for before any index version was published."""

    code = "no_index"
    http_status = 503


class ClusterUnavailable(ShopLensError):
    """A Ray cluster (`shoplens index --ray ADDRESS`) that cannot be reached or that failed the run."""

    code = "cluster_unavailable"
    http_status = 503
