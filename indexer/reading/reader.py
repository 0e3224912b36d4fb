"""The OCR reader: RapidOCR (PP-OCRv6 small detection and recognition, ONNX, inside the `rapidocr` wheel) on
onnxruntime, loaded once per process.

Why it is built this way:
- The models are the wheel's own files (`rapidocr/models/`), so nothing is downloaded; a missing file is a
  `WeightsUnavailable` line, not a network attempt.
- Detection runs first and recognition only on the regions it finds, so an image without printed text costs
  only the detector. The detector works on a small side of `DETECT_SIDE` pixels (PP-OCRv6's default is 736:
  ~0.7 s on a 198 px catalogue image here; 480: ~0.35 s with the same brand words read on the grocery cartons).
- Huge images are downscaled to `MAX_SIDE` before anything runs. Rotation (immich #30992 lost text after it):
  EXIF orientation is applied when decoding (indexer.images.decode_image), and the reading is keyed by the
  image's bytes, so a rotated file is read again; and where the detector finds regions but nothing legible is
  recognised, the image is also read turned by 90, 270 and 180 degrees and the best reading is kept (PP-OCRv6's
  detector finds almost nothing on a carton photographed sideways, and its angle classifier only flips lines).
- Every input ends in a `Reading` with an outcome (read / no_text / failed + reason); nothing raises into the
  indexer, so one bad image never stops a run.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from indexer.errors import BadImage, WeightsUnavailable
from indexer.images import decode_image

log = logging.getLogger(__name__)

DETECT_SIDE = 480
MAX_SIDE = 960         # huge images are detected at this size (a 6,000 px carton: 4.1 s at 1,280, same words)
MIN_SIDE = 16          # below this there is nothing a detector can find (a 1-pixel image is `no_text`)
MIN_CONFIDENCE = 0.6   # recognised lines below this are mostly noise on textures (fabric, fruit skin)
_MODEL_FILES = ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx")


def _rapidocr_version() -> str:
    try:
        return importlib.metadata.version("rapidocr")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


# Stored with every reading: a change of package, models or of the settings above re-reads the images.
READER_VERSION = f"rapidocr-{_rapidocr_version()}/PP-OCRv6-small/det{DETECT_SIDE}/min{MIN_CONFIDENCE}"


@dataclass(frozen=True)
class TextLine:
    """One line of printed text: what was read, the recogniser's confidence, and its box (4 corner points in
    the pixels of the image as stored)."""

    text: str
    confidence: float
    box: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 4), "box": [list(p) for p in self.box]}

    @classmethod
    def from_dict(cls, d: dict) -> "TextLine":
        return cls(d["text"], float(d["confidence"]), tuple(tuple(p) for p in d.get("box", ())))


@dataclass(frozen=True)
class Reading:
    """The result of reading one image: outcome 'read' (lines found), 'no_text', or 'failed' (with reason)."""

    outcome: str
    lines: tuple[TextLine, ...] = ()
    reason: str | None = None
    seconds: float = 0.0
    regions: int = 0  # text regions recognised at all (before the confidence filter)

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)


class TextReader:
    """RapidOCR engines, one per concurrent caller. Its wrapper keeps per-call flags on the instance, so one
    engine's calls must not interleave; onnxruntime itself is thread-safe. The indexer reads on its decoding
    threads and auto's sample on as many, so up to `limit` engines (one thread each) are made as callers need them
    and reused after."""

    def __init__(self, make_engine: Callable[[], object], limit: int, version: str = READER_VERSION) -> None:
        self.version = version
        self._make_engine = make_engine
        self._limit = max(1, limit)
        self._idle: list[object] = [make_engine()]  # the first at once: a broken install fails on load
        self._made = 1
        self._free = threading.Condition()

    @contextmanager
    def _engine(self) -> Iterator[object]:
        """An engine no other thread is using: an idle one, a new one while fewer than `limit` exist, else the
        next one handed back."""
        with self._free:
            while not self._idle and self._made >= self._limit:
                self._free.wait()
            engine = self._idle.pop() if self._idle else None
            if engine is None:
                self._made += 1
        try:
            if engine is None:
                engine = self._make_engine()
            yield engine
        finally:
            with self._free:
                if engine is not None:
                    self._idle.append(engine)
                else:  # making it failed: let another caller try
                    self._made -= 1
                self._free.notify()

    def read_bytes(self, data: bytes, *, max_pixels: int = 40_000_000, what: str = "image") -> Reading:
        """Read image bytes; undecodable, empty or oversized input gives a 'failed' reading with the reason."""
        try:
            image, _ = decode_image(data, max_pixels=max_pixels, what=what)
        except BadImage as exc:
            return Reading("failed", reason=str(exc))
        return self.read_image(image)

    def read_image(self, image: Image.Image, *, turn: bool = True) -> Reading:
        """Read a decoded (RGB, upright) image; with `turn`, also try it turned where nothing legible was read
        although the detector found text regions (see the module docstring)."""
        started = time.perf_counter()
        if min(image.size) < MIN_SIDE:
            return Reading("no_text", reason=f"image is {image.width}x{image.height} pixels", regions=0)
        image = _downscaled(image.convert("RGB"), MAX_SIDE)
        try:
            lines, regions = self._run(image)
            if turn and regions and not _legible(lines):
                for angle in (90, 270, 180):
                    turned, turned_regions = self._run(image.rotate(angle, expand=True))
                    if _weight(turned) > _weight(lines):
                        lines, regions = turned, turned_regions
                    if _legible(lines):
                        break
        except Exception as exc:  # noqa: BLE001 - an OCR failure is recorded for the image, never fatal
            log.warning("reading text failed: %s", exc)
            return Reading("failed", reason=f"OCR failed: {type(exc).__name__}: {exc}",
                           seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        return Reading("read" if lines else "no_text", tuple(lines), seconds=seconds, regions=regions)

    def _run(self, image: Image.Image) -> tuple[list[TextLine], int]:
        """One RapidOCR pass (detection, then angle classification and recognition of the regions found)."""
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        with self._engine() as engine:
            out = engine(bgr, use_det=True, use_cls=True, use_rec=True)
        return _lines(out), len(getattr(out, "txts", None) or ())


def _weight(lines: list[TextLine]) -> float:
    """How much was read: confident letters and digits."""
    return sum(line.confidence * sum(ch.isalnum() for ch in line.text) for line in lines)


def _legible(lines: list[TextLine]) -> bool:
    """At least one confident word of three letters: enough to stop trying other orientations."""
    return any(line.confidence >= 0.8 and sum(ch.isalpha() for ch in line.text) >= 3 for line in lines)


def _downscaled(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.LANCZOS)


def _lines(out: object) -> list[TextLine]:
    """Lines of a RapidOCR result worth keeping: confident and with at least one letter or digit."""
    txts, scores, boxes = getattr(out, "txts", None), getattr(out, "scores", None), getattr(out, "boxes", None)
    if not txts:
        return []
    lines = []
    for text, score, box in zip(txts, scores, boxes):
        text = " ".join(str(text).split())
        if float(score) < MIN_CONFIDENCE or not any(ch.isalnum() for ch in text):
            continue
        points = tuple((int(round(x)), int(round(y))) for x, y in np.asarray(box).reshape(-1, 2))
        lines.append(TextLine(text, float(score), points))
    return lines


def model_dir() -> Path:
    """The folder of the ONNX models inside the installed `rapidocr` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise WeightsUnavailable("the OCR package `rapidocr` is not installed",
                                 hint="Run `make install` (or pip install rapidocr==3.10.0 onnxruntime).")
    return Path(spec.origin).parent / "models"


_LOAD_LOCK = threading.Lock()


def load_reader() -> TextReader:
    """The process's reader, loaded once from the wheel's model files (no download); safe to call from the
    indexer's decoding threads at once."""
    with _LOAD_LOCK:
        return _load_reader()


@lru_cache(maxsize=1)
def _load_reader() -> TextReader:
    folder = model_dir()
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise WeightsUnavailable(f"OCR model files missing from {folder}: {', '.join(missing)}",
                                 hint="Reinstall rapidocr==3.10.0, whose wheel carries them.")
    from rapidocr import RapidOCR

    params = {
        "Global.log_level": "error",
        "Global.text_score": 0.3,  # weak lines come back so that `regions` counts them; _lines keeps the confident
        "Global.model_root_dir": str(folder),
        "Det.model_path": str(folder / _MODEL_FILES[0]),
        "Rec.model_path": str(folder / _MODEL_FILES[1]),
        "Cls.model_path": str(folder / _MODEL_FILES[2]),
        "Det.limit_side_len": DETECT_SIDE,
        # One thread per session, one engine per caller: at index time each decoding worker reads beside the
        # encoder, and several threads in each engine would only contend.
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }

    def make_engine() -> object:
        started = time.perf_counter()
        engine = RapidOCR(params=params)
        log.info("OCR engine loaded from %s in %.1fs", folder, time.perf_counter() - started)
        return engine

    return TextReader(make_engine, limit=os.cpu_count() or 1)
