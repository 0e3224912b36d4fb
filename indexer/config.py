"""All settings in one place: every `SHOPLENS_*` environment variable is read here and nowhere else.

Values come from, in order of precedence: explicit arguments (CLI flags, `create_app(config)`), environment
variables (`SHOPLENS_*`, `SHOPLENS_SEARCH_<NAME>` for the search settings), then defaults. Nothing here touches the
disk at import time. The search settings live here too (typed, `SearchSettings`), so that the indexer, the engine
and the web app read one object; the code that acts on them stays in `search/`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from indexer.errors import ConfigError

DEFAULT_MODEL = "shoplens-lite"
DEFAULT_LLM = "smollm2-135m"
# The vectors every product has: its photo, its texts, and their normalised sum (indexer.vectors.fuse_vectors).
VECTOR_KINDS: tuple[str, ...] = ("image", "text", "fused")
# The multilingual product-text vectors (indexer.model.multilingual): a kind of its own, under its own model, that
# hybrid text search fuses in; a version published before it existed (or with SHOPLENS_MULTILINGUAL=off) has none.
MULTILINGUAL_KIND = "multilingual"
# What a text query can run: both rankers fused, BM25 alone, or one kind of vectors.
SEARCH_MODES: tuple[str, ...] = ("hybrid", "lexical", *VECTOR_KINDS)
# How a photo alone is answered: auto (a scene when it looks like one), on (always a scene), off (a product photo).
SCENE_MODES: tuple[str, ...] = ("auto", "on", "off")
# `shoplens index --read-text`: read the words printed on product images always, never, or while the catalog's
# first images show that it has printed text (indexer.reading.policy).
READ_TEXT_MODES: tuple[str, ...] = ("auto", "on", "off")
# Text-query floors per vector kind for index versions published before versions measured their own: the values
# measured on the 44,441-product Myntra index (bench/RESULTS.md), where they sat at the nonsense p90.
UNCALIBRATED_FLOORS = {"text": 0.45, "fused": 0.41, "image": 0.27, MULTILINGUAL_KIND: 0.85}
# How the encoder's towers run (indexer.model.runtime): onnx = ONNX Runtime (fp32) where the export matches eager
# PyTorch; auto = the same, with a tower's int8 twin where that matches too and is faster; eager = PyTorch only.
INFERENCE_RUNTIMES: tuple[str, ...] = ("auto", "onnx", "eager")
# The precision of the copywriter's language model's linear layers (web.copywriter.half_weights): fp16 halves the
# memory each written token reads on CPU; fp32 is the model as stored.
LLM_WEIGHTS: tuple[str, ...] = ("fp16", "fp32")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """A one-line ConfigError where `value` is not one of `choices`: a typo in a setting is named, not guessed."""
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, not {value!r}")


def parse_hybrid(spec: str) -> tuple[str, float, float]:
    """Parse a hybrid spec into (method, value, lexical weight):
    'rrf', 'rrf:60' (k), 'rrf:60:2' (k, weight of the lexical ranking against 1 for vectors),
    'blend' or 'blend:0.7' (alpha = weight of the vector score)."""
    method, *args = spec.strip().lower().split(":")
    try:
        numbers = [float(a) for a in args]
    except ValueError:
        raise ValueError(f"hybrid spec {spec!r} has a non-number") from None
    if method == "rrf" and len(numbers) <= 2:
        k, weight = (numbers + [60.0, 1.0][len(numbers):])[:2]
        if k <= 0 or weight < 0:
            raise ValueError("rrf k must be positive and its lexical weight >= 0")
        return method, k, weight
    if method == "blend" and len(numbers) <= 1:
        alpha = numbers[0] if numbers else 0.5
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("blend alpha must lie in [0, 1]")
        return method, alpha, 1.0 - alpha
    raise ValueError(f"unknown hybrid spec {spec!r}: use rrf[:K[:LEXICAL_WEIGHT]] or blend[:ALPHA]")


@dataclass(frozen=True)
class SearchSettings:
    """How queries are answered. Defaults were measured on Myntra title and attribute queries (bench/hybrid.py,
    bench/RESULTS.md); each can be set by `SHOPLENS_SEARCH_<NAME>` (e.g. `SHOPLENS_SEARCH_HYBRID=blend:0.6`) or by
    `create_app({"search": {...}})`."""

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
    # A photo alone whose printed words are read: visual cosine + photo_text_weight * trigram cosine of its words
    # with each product's title, brand and printed words; a product matching by photo_text_min or more is a hit
    # even below the photo floor. 0 turns reading query photos off. Chosen on the tuning half of the grocery photos
    # (bench/ocr.py: weights 0.25-2 x floors 0.2-0.4, recall@1 0.432-0.453; 0.5 / 0.2 best).
    photo_text_weight: float = 0.5
    photo_text_min: float = 0.2
    # A text query in `image` mode (words → product photos): cosine + image_text_weight * trigram cosine of the
    # words with the words printed on each product image (0: vectors only). Chosen on the even-id half of the
    # grocery titles (bench/ocr.py: 0.25-2; recall@1 0.122-0.146 there, 1.0 best since printed amounts are terms).
    image_text_weight: float = 1.0
    # Hybrid text queries also search the multilingual vectors (where the version has them) and blend their
    # normalised scores in with this weight when every query word is in the catalog's BM25 vocabulary, rising
    # linearly to multilingual_foreign_weight when none is (a query in another language). Hits below the floor
    # (min_multilingual_score, else the version's measured one) or multilingual_margin under the best are dropped.
    # Chosen on the tuning halves of bench/multilingual.py's queries (weights 0-0.2 / 0.5-0.9, margins 0.04-0.12;
    # bench/RESULTS.md "multilingual"): 0.2 / 0.9 / 0.04 was best for both English and foreign Myntra queries.
    multilingual_weight: float = 0.2
    multilingual_foreign_weight: float = 0.9
    multilingual_margin: float = 0.04
    min_multilingual_score: float | None = None
    # e5 scores random strings as high as real words against a catalog, but puts them near one another: a query whose
    # multilingual vector has at least this cosine with the version's nonsense centroid (the mean of the calibration
    # strings' vectors, `indexer.calibration.nonsense_centroid`) gets no multilingual hits. 0.89: held-out random
    # strings (seed 1) p10 0.895 / median 0.925; 14 Swedish, Spanish and German words and phrases 0.865-0.885;
    # grocery store titles median 0.880 (chosen on these, nothing in bench/multilingual.py's held-out halves).
    multilingual_nonsense_cosine: float = 0.89
    # A hybrid query's multilingual encode runs on a thread of its own while the request's thread runs BM25 and the
    # main text encode: one query uses two cores of an idle server (bench/query.py measures both ways).
    encode_beside: bool = True
    negative_weight: float = 0.35   # how strongly "without X" pushes the query vector away from X
    collapse: bool = True           # fold near-duplicates (same image bytes, or same title and near-identical image)
    duplicate_cosine: float = 0.97  # image-vector cosine above which same-titled products count as duplicates
    # Scene photos (a room: search.ranking.scene). `scene` is what a photo alone gets unless the query says:
    # auto (decide per photo), on, off. A photo is a scene when its large crops' mean cosine with the whole photo
    # is under scene_threshold: 0.60 took 50% of the tuning-half IKEA rooms and 0% / 0% / 2.5% / 7.5% of 40 IKEA
    # catalogue, grocery in-store, grocery catalogue and Myntra photos (0.62: rooms 60%, Myntra 25%). A scene is
    # searched with at most scene_regions crops, the scene_keep share of the grid with the most edges. Chosen on
    # the even-positioned IKEA rooms (bench/rooms.py, bench/RESULTS.md). Before any crop is encoded, a photo whose
    # border is plain (at least scene_plain_border of its border pixels near the border's median colour: a studio
    # shot) is a product photo: the tuning-half rooms reach 0.55 at most (held-out half 0.64), while 200 IKEA and 200
    # Myntra catalogue photos have medians 0.99 / 0.93 and 97% / 91% of them are over 0.7. Such a photo query then
    # costs one encode, not the detection's five.
    scene: str = "auto"
    scene_threshold: float = 0.60
    scene_plain_border: float = 0.7
    scene_regions: int = 40
    scene_keep: float = 0.6

    def __post_init__(self) -> None:
        try:
            parse_hybrid(self.hybrid)
        except ValueError as exc:
            raise ConfigError(f"search setting hybrid: {exc}") from None
        for name in ("hybrid_kind", "image_kind", "similar_kind"):
            check_choice(f"search setting {name}", getattr(self, name), VECTOR_KINDS)
        check_choice("search setting text_mode", self.text_mode, SEARCH_MODES)
        if not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError("search setting image_weight must lie in [0, 1]")
        if min(self.multilingual_weight, self.multilingual_foreign_weight) < 0 or self.multilingual_margin < 0:
            raise ConfigError("search settings multilingual_weight, multilingual_foreign_weight and "
                              "multilingual_margin must be >= 0")
        if self.candidates < 10:
            raise ConfigError("search setting candidates must be at least 10")
        check_choice("search setting scene", self.scene, SCENE_MODES)
        if not 0.0 < self.scene_plain_border <= 1.0:
            raise ConfigError("search setting scene_plain_border must lie in (0, 1]")
        if self.scene_regions < 1 or not 0.0 < self.scene_keep <= 1.0:
            raise ConfigError("search settings scene_regions must be at least 1 and scene_keep in (0, 1]")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SearchSettings":
        """Defaults, then the `SHOPLENS_SEARCH_<NAME>` variables of `env` (the process's environment by default)."""
        env = os.environ if env is None else env
        prefix = "SHOPLENS_SEARCH_"
        return cls().updated({k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)})

    def updated(self, given: Mapping[str, Any]) -> "SearchSettings":
        """A copy with `given` values (strings from the environment or typed values), each checked and coerced."""
        types = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for name, raw in given.items():
            if name not in types:
                raise ConfigError(f"unknown search setting {name!r}")
            values[name] = _coerce(name, types[name], raw)
        return replace(self, **values)

    def text_floor(self, kind: str, measured: Mapping[str, float]) -> float:
        """The floor for a text query's hits on `kind` vectors: the configured one, else the index version's
        `measured` floor (its manifest's `score_floors`), else the uncalibrated default."""
        configured = {"text": self.min_text_score, "fused": self.min_fused_score, "image": self.min_cross_score,
                      MULTILINGUAL_KIND: self.min_multilingual_score}[kind]
        if configured is not None:
            return configured
        return measured.get(kind, UNCALIBRATED_FLOORS[kind])

@dataclass(frozen=True)
class Settings:
    """Where ShopLens keeps its state and how it behaves; see README 'Configuration'."""

    home: Path
    db_url: str
    # The encoder spec; None: this home's model (indexer.model.adapted.home_model_spec: its adapted model when the
    # published version uses one, else DEFAULT_MODEL).
    model_spec: str | None = None
    # Converted model weights, shared by every home of the machine ($SHOPLENS_CACHE, else ~/.cache/shoplens).
    model_cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "shoplens")
    api_key: str | None = None
    # Bad-input limits shared by the indexer and the API.
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 25 * 1024 * 1024
    max_query_chars: int = 512
    # What one serving worker may hold in memory for the vector indexes of a version, all kinds together
    # ($SHOPLENS_INDEX_MEMORY_BUDGET_MB): `indexer.vectors.choose_index_type` picks exact, HNSW or a compressed
    # index that fits (a memory-mapped float16 re-rank store aside) and refuses a budget nothing fits.
    index_memory_budget_mb: int = 2048
    batch_size: int = 32
    workers: int = 2
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = 600
    llm_spec: str = DEFAULT_LLM
    llm_weights: str = "fp16"  # one of LLM_WEIGHTS; $SHOPLENS_LLM_WEIGHTS
    inference: str = "auto"  # one of INFERENCE_RUNTIMES
    read_text: str = "auto"  # READ_TEXT_MODES; $SHOPLENS_READ_TEXT, `shoplens index --read-text`
    # `shoplens index --ray`: encoding actors on the cluster (0: as many as its CPUs allow) and CPUs (intra-op
    # threads) each; $SHOPLENS_RAY_ACTORS, $SHOPLENS_RAY_ACTOR_CPUS. Each actor holds one copy of the model.
    ray_actors: int = 0
    ray_actor_cpus: int = 1
    # Publish the multilingual product-text vectors (queries in any language); $SHOPLENS_MULTILINGUAL=off skips
    # them (indexing then costs no multilingual encoding, and search runs without them).
    multilingual: bool = True
    search: SearchSettings = field(default_factory=SearchSettings)

    def __post_init__(self) -> None:
        check_choice("setting inference", self.inference, INFERENCE_RUNTIMES)
        check_choice("setting llm_weights", self.llm_weights, LLM_WEIGHTS)
        if self.index_memory_budget_mb < 1:
            raise ConfigError(f"index_memory_budget_mb must be a positive number of MB, "
                              f"not {self.index_memory_budget_mb}")
        check_choice("setting read_text", self.read_text, READ_TEXT_MODES)
        if self.ray_actors < 0 or self.ray_actor_cpus < 1:
            raise ConfigError("ray_actors must be 0 (one per CPU) or more, and ray_actor_cpus at least 1")

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def with_overrides(self, **kwargs: Any) -> "Settings":
        """A copy with the given values (None leaves a value as it is; `search` may be a mapping of overrides)."""
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        unknown = set(kwargs) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
        if isinstance(kwargs.get("search"), Mapping):
            kwargs["search"] = self.search.updated(kwargs["search"])
        return replace(self, **kwargs)


def default_db_url(home: Path) -> str:
    return f"sqlite:///{(home / 'shoplens.db').resolve()}"


def load_settings(home: str | os.PathLike | None = None, db_url: str | None = None, **overrides: Any) -> Settings:
    """Build settings from arguments, then `SHOPLENS_*` environment variables, then defaults."""
    env = os.environ
    home_path = Path(home or env.get("SHOPLENS_HOME") or ".shoplens").expanduser().resolve()
    settings = Settings(
        home=home_path,
        db_url=db_url or env.get("SHOPLENS_DB") or default_db_url(home_path),
        model_spec=env.get("SHOPLENS_MODEL") or None,
        model_cache_dir=Path(env.get("SHOPLENS_CACHE") or Path.home() / ".cache" / "shoplens").expanduser(),
        api_key=env.get("SHOPLENS_API_KEY") or None,
        cors_origins=tuple(o for o in env.get("SHOPLENS_CORS_ORIGINS", "").split(",") if o),
        llm_spec=env.get("SHOPLENS_LLM") or DEFAULT_LLM,
        llm_weights=(env.get("SHOPLENS_LLM_WEIGHTS") or "fp16").strip().lower(),
        inference=env.get("SHOPLENS_INFERENCE") or "auto",
        read_text=(env.get("SHOPLENS_READ_TEXT") or "auto").strip().lower(),
        ray_actors=_env_int(env, "SHOPLENS_RAY_ACTORS", 0),
        ray_actor_cpus=_env_int(env, "SHOPLENS_RAY_ACTOR_CPUS", 1),
        index_memory_budget_mb=_env_int(env, "SHOPLENS_INDEX_MEMORY_BUDGET_MB", 2048),
        multilingual=(env.get("SHOPLENS_MULTILINGUAL") or "on").strip().lower() not in ("0", "off", "false", "no"),
        search=SearchSettings.from_env(env),
    )
    return settings.with_overrides(**overrides)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


def settings_of(ctx: Any) -> Settings:
    """The settings a `shoplens` command runs with: the root click context's object (set by `web.cli`)."""
    return ctx.find_root().obj


def _coerce(name: str, typ: str, raw: Any) -> Any:
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
