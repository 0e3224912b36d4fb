"""All settings in one place.

Values come from, in order of precedence: explicit arguments (CLI flags, `create_app(config)`), environment
variables (`SHOPLENS_*`), then defaults. Nothing here touches the disk at import time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_MODEL = "shoplens-lite"


@dataclass(frozen=True)
class Settings:
    """Where ShopLens keeps its state and how it behaves; see README 'Configuration'."""

    home: Path
    db_url: str
    model_spec: str = DEFAULT_MODEL
    api_key: str | None = None
    # Bad-input limits shared by the indexer and the API.
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 25 * 1024 * 1024
    max_query_chars: int = 512
    # Index building: above this many vectors the exact index gives way to an approximate one (see vectors.py).
    index_memory_budget_mb: int = 2048
    batch_size: int = 32
    workers: int = 2
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = 600
    llm_spec: str = "smollm2-135m"
    extra: dict = field(default_factory=dict)

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def with_overrides(self, **kwargs) -> "Settings":
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})


def default_db_url(home: Path) -> str:
    return f"sqlite:///{(home / 'shoplens.db').resolve()}"


def load_settings(home: str | os.PathLike | None = None, db_url: str | None = None, **overrides) -> Settings:
    """Build settings from arguments, then `SHOPLENS_*` environment variables, then defaults."""
    env = os.environ
    home_path = Path(home or env.get("SHOPLENS_HOME") or ".shoplens").expanduser().resolve()
    settings = Settings(
        home=home_path,
        db_url=db_url or env.get("SHOPLENS_DB") or default_db_url(home_path),
        model_spec=env.get("SHOPLENS_MODEL", DEFAULT_MODEL),
        api_key=env.get("SHOPLENS_API_KEY") or None,
        cors_origins=tuple(o for o in env.get("SHOPLENS_CORS_ORIGINS", "").split(",") if o),
        llm_spec=env.get("SHOPLENS_LLM", "smollm2-135m"),
    )
    return settings.with_overrides(**overrides)
