"""Search tuning in one place: hybrid fusion method, which vectors each query kind searches, score floors.

Defaults were measured on Myntra title and attribute queries (bench/hybrid.py, bench/RESULTS.md). Each value can be
overridden by `Settings.extra["search"]` (a dict, e.g. from `create_app({"search": {...}})`) or by an environment
variable `SHOPLENS_SEARCH_<NAME>` (e.g. `SHOPLENS_SEARCH_HYBRID=blend:0.6`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from indexer.config import Settings
from indexer.errors import ConfigError
from search.fusion import parse_hybrid

KINDS = ("image", "text", "fused")
MODES = ("hybrid", "lexical", *KINDS)
# Text-query floors per vector kind for index versions published before versions measured their own: the values
# measured on the 44,441-product Myntra index (bench/RESULTS.md), where they sat at the nonsense p90.
UNCALIBRATED_FLOORS = {"text": 0.45, "fused": 0.41, "image": 0.27}


@dataclass(frozen=True)
class SearchConfig:
    """How queries are answered; see the module docstring for how to override."""

    hybrid: str = "blend:0.3"       # rrf[:K[:LEXICAL_WEIGHT]] or blend[:ALPHA] (ALPHA = weight of the vector score)
    text_mode: str = "hybrid"       # what a plain text query runs: hybrid | lexical | image | text | fused
    hybrid_kind: str = "fused"      # product vectors the vector half of hybrid compares a text query with
    image_kind: str = "image"       # product vectors a photo (or photo + text) query is compared with
    similar_kind: str = "fused"     # product vectors "more like this" compares
    candidates: int = 400           # hits taken from each ranker; facets count over what survives of them
    # Cosine floors for vector hits of a text query (lexical hits pass) on text, fused and image vectors. None:
    # the floor the index version measured for itself (indexer.calibration), or UNCALIBRATED_FLOORS without one.
    min_text_score: float | None = None
    min_fused_score: float | None = None
    min_cross_score: float | None = None
    # Cosine floor for photo and similar-product hits. In-store grocery photos score 0.31 / 0.45 / 0.61 (p10 / p50 /
    # p90) against their own product: 0.35 cut 19% of them (recall@50 0.814), 0.30 cuts 9% (0.909); lower lets a
    # photo of noise keep hundreds of products of the 2,500-product demo (0.25: 250 on average, 0.30: 39).
    min_image_score: float = 0.30
    vector_margin: float = 0.2      # text: vector hits this far below the best one are left out of the matching set
    image_weight: float = 0.6       # photo's share of a photo + text query (text gets the rest)
    negative_weight: float = 0.35   # how strongly "without X" pushes the query vector away from X
    collapse: bool = True           # fold near-duplicates (same image bytes, or same title and near-identical image)
    duplicate_cosine: float = 0.97  # image-vector cosine above which same-titled products count as duplicates

    def __post_init__(self) -> None:
        try:
            parse_hybrid(self.hybrid)
        except ValueError as exc:
            raise ConfigError(f"search setting hybrid: {exc}") from None
        for name in ("hybrid_kind", "image_kind", "similar_kind"):
            if getattr(self, name) not in KINDS:
                raise ConfigError(f"search setting {name} must be one of {', '.join(KINDS)}")
        if self.text_mode not in MODES:
            raise ConfigError(f"search setting text_mode must be one of {', '.join(MODES)}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError("search setting image_weight must lie in [0, 1]")
        if self.candidates < 10:
            raise ConfigError("search setting candidates must be at least 10")

    @classmethod
    def from_settings(cls, settings: Settings) -> "SearchConfig":
        """Defaults, then `SHOPLENS_SEARCH_*` environment variables, then `settings.extra["search"]`."""
        values: dict = {}
        for f in fields(cls):
            raw = os.environ.get(f"SHOPLENS_SEARCH_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _coerce(f.name, f.type, raw)
        for name, raw in (settings.extra.get("search") or {}).items():
            typ = next((f.type for f in fields(cls) if f.name == name), None)
            if typ is None:
                raise ConfigError(f"unknown search setting {name!r}")
            values[name] = _coerce(name, typ, raw)
        return replace(cls(), **values)

    def text_floor(self, kind: str, measured: dict[str, float]) -> float:
        """The floor for a text query's hits on `kind` vectors: the configured one, else the index version's
        `measured` floor (its manifest's `score_floors`), else the uncalibrated default."""
        configured = {"text": self.min_text_score, "fused": self.min_fused_score, "image": self.min_cross_score}[kind]
        if configured is not None:
            return configured
        return measured.get(kind, UNCALIBRATED_FLOORS[kind])


def _coerce(name: str, typ: str, raw):
    if typ.endswith(" | None"):
        if raw is None or str(raw).strip().lower() in ("", "none", "auto"):
            return None
        typ = typ.removesuffix(" | None")
    try:
        if typ == "bool":
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(f"search setting {name}: {raw!r} is not a {typ}") from None
