"""Safe image loading, shared by the indexer (catalog images) and the web API (uploaded query photos).

Order of checks, cheapest and safest first, so hostile bytes are refused before any pixel is decoded:
size in bytes (413) → format from magic bytes against the allowlist JPEG/PNG/WebP/GIF (415) → pixel count
from the header (413, decompression bombs) → full decode (400 if truncated or corrupt).
"""
from __future__ import annotations

import hashlib
import io
import struct
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageFile, ImageOps

from indexer.errors import BadImage

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_ALLOWED_TEXT = "JPEG, PNG, WebP or GIF"
# Formats we recognise only to name them in the refusal.
_KNOWN_OTHER = ((b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"),
                (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"\xff\x0a", "JPEG XL"),
                (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"))

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, not decode grey


@dataclass(frozen=True)
class ImageInfo:
    """Facts about image bytes, recorded in product_images."""

    sha256: str
    format: str
    width: int
    height: int
    n_bytes: int


def sniff_format(head: bytes) -> str | None:
    """The format named by the magic bytes, one of ALLOWED_FORMATS or another known name; None if unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return "HEIC/AVIF"
    for magic, name in _KNOWN_OTHER:
        if head.startswith(magic):
            return name
    return None


def check_format(data: bytes, what: str = "image") -> str:
    """The allowed format of `data`, or BadImage 415 naming what it is."""
    fmt = sniff_format(data[:16])
    if fmt in ALLOWED_FORMATS:
        return fmt
    if not data:
        raise BadImage(f"{what} is empty (0 bytes)", http_status=400)
    found = f"a {fmt} file" if fmt else "not a recognised image format"
    raise BadImage(f"{what} is {found}; only {_ALLOWED_TEXT} are accepted", http_status=415,
                   hint="Convert it to JPEG or PNG.")


def decode_image(data: bytes, *, max_pixels: int, max_bytes: int | None = None,
                 what: str = "image") -> tuple[Image.Image, ImageInfo]:
    """Check and decode image bytes into an RGB image; raises BadImage (400/413/415) with a clear message."""
    if max_bytes is not None and len(data) > max_bytes:
        raise BadImage(f"{what} is {len(data):,} bytes, over the {max_bytes:,}-byte limit", http_status=413)
    fmt = check_format(data, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise BadImage(f"{what} is {width}x{height} = {width * height:,} pixels, over the "
                               f"{max_pixels:,}-pixel limit (possible decompression bomb)", http_status=413)
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            rgb = _to_rgb(ImageOps.exif_transpose(img))
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{what} is over the {max_pixels:,}-pixel limit (possible decompression bomb): {exc}",
                       http_status=413) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise BadImage(f"{what} is {reason} ({fmt}): {exc}", http_status=400,
                       hint="Re-export the image and try again.") from exc
    info = ImageInfo(hashlib.sha256(data).hexdigest(), fmt, width, height, len(data))
    return rgb, info


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB on a white background (transparent PNG/GIF product shots are usually drawn on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


class ImageResolver:
    """Turns a catalog `image` value into bytes: absolute path, path under a root, or `ARCHIVE.zip#MEMBER`.

    Relative references are looked up under each root in order (`--images-root`, then the catalog's folder) and
    must stay inside it: `../` escapes are refused, so a catalog cannot read arbitrary files. Zip archives are
    opened once per thread.
    """

    def __init__(self, roots: Sequence[Path], *, max_bytes: int) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.max_bytes = max_bytes
        self._local = threading.local()

    def _find(self, ref: str) -> Path:
        path = Path(ref).expanduser()
        if path.is_absolute():
            if path.is_file():
                return path
            raise BadImage(f"image file {ref} not found", http_status=400)
        for root in self.roots:
            candidate = (root / path).resolve()
            if not candidate.is_relative_to(root):
                raise BadImage(f"image path {ref!r} leaves the images folder {root}", http_status=400)
            if candidate.is_file():
                return candidate
        where = " or ".join(str(r) for r in self.roots)
        raise BadImage(f"image file {ref} not found under {where}", http_status=400,
                       hint="Check --images-root.")

    def _archive(self, path: Path) -> zipfile.ZipFile:
        archives = self._local.__dict__.setdefault("archives", {})
        if path not in archives:
            try:
                archives[path] = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise BadImage(f"archive {path} cannot be opened: {exc}", http_status=400) from exc
        return archives[path]

    def read(self, ref: str) -> tuple[bytes, str]:
        """(bytes, resolved reference) of an image; BadImage if missing, too big or unreadable."""
        ref = ref.strip()
        if not ref:
            raise BadImage("no image: the image column is empty", http_status=400)
        archive_ref, sep, member = ref.partition("#")
        if sep and archive_ref.lower().endswith(".zip"):
            archive_path = self._find(archive_ref)
            archive = self._archive(archive_path)
            try:
                entry = archive.getinfo(member)
            except KeyError:
                raise BadImage(f"image {member!r} is not in archive {archive_path.name}", http_status=400) from None
            self._check_size(entry.file_size, ref)
            try:
                data = archive.read(entry)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise BadImage(f"image {ref} cannot be read from the archive: {exc}", http_status=400) from exc
            return data, f"{archive_path}#{member}"
        path = self._find(ref)
        self._check_size(path.stat().st_size, ref)
        return path.read_bytes(), str(path)

    def _check_size(self, n_bytes: int, ref: str) -> None:
        if n_bytes > self.max_bytes:
            raise BadImage(f"image {ref} is {n_bytes:,} bytes, over the {self.max_bytes:,}-byte limit",
                           http_status=413)
