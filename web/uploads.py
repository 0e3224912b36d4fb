"""Uploaded query photos: read with a byte cap, check format and pixel count before decoding, and (for the
web pages) keep recent uploads on disk by content hash so result links can re-run a photo search.

The server never fetches images from URLs: a photo arrives as an upload or not at all.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from PIL import Image
from werkzeug.datastructures import FileStorage

from indexer.config import Settings
from indexer.errors import BadImage, BadInput, NotFound
from indexer.images import check_format, decode_image

KEEP_UPLOADS = 500
_SHA = re.compile(r"[0-9a-f]{64}")


def read_upload(file: FileStorage | None, settings: Settings) -> bytes:
    """The uploaded file's bytes, refusing an empty or oversized upload without reading past the cap."""
    if file is None or not file.filename and not file.content_length:
        raise BadInput("no photo in the request: send it as the multipart field 'image'")
    data = file.stream.read(settings.max_image_bytes + 1)
    if len(data) > settings.max_image_bytes:
        raise BadImage(f"the photo is over the {settings.max_image_bytes:,}-byte limit", http_status=413,
                       hint="Send a smaller photo.")
    if not data:
        raise BadImage("the photo is empty (0 bytes)")
    return data


def decode_upload(data: bytes, settings: Settings) -> Image.Image:
    """Decode checked bytes into RGB (format allowlist and pixel cap are checked before any decoding).

    `read_upload` has already capped the bytes, so a 413 from here is the pixel cap: for a shopper that is a
    bad photo (400), not an oversized request.
    """
    try:
        image, _info = decode_image(data, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes,
                                    what="the photo")
    except BadImage as exc:
        if exc.http_status == 413 and len(data) <= settings.max_image_bytes:
            raise BadImage(exc.message, hint="Send a photo of at most "
                           f"{settings.max_image_pixels:,} pixels.", http_status=400) from None
        raise
    return image


class UploadStore:
    """Recent query photos under `<home>/cache/uploads/<sha256>`, shared by every worker, oldest pruned."""

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.cache_dir / "uploads"

    def save(self, data: bytes) -> str:
        check_format(data, "the photo")
        digest = hashlib.sha256(data).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / digest
        if not path.exists():
            tmp = self.folder / f".{digest}.{os.getpid()}"
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self._prune()
        return digest

    def load(self, digest: str) -> bytes:
        if not _SHA.fullmatch(digest or ""):
            raise BadInput("img must be the 64-character hex id of an uploaded photo")
        path = self.folder / digest
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound("that photo is no longer stored", hint="Upload it again.") from None

    def _prune(self) -> None:
        files = sorted((p for p in self.folder.iterdir() if _SHA.fullmatch(p.name)), key=_mtime)
        for old in files[:-KEEP_UPLOADS]:
            old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
