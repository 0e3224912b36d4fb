"""Safe image loading on real catalog images and generated hostile ones: the right error and status each time."""
from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from indexer.errors import BadImage
from indexer.images import ImageResolver, check_format, decode_image
from indexer_data import GROCERY, MYNTRA, png_header_only

CAP = 40_000_000


def _encoded(fmt: str, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (32, 24), (200, 30, 30) if mode == "RGB" else 0).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def resolver() -> ImageResolver:
    return ImageResolver([MYNTRA], max_bytes=5 * 1024 * 1024)


def test_real_images_from_folder_and_zip(resolver):
    data, ref = resolver.read("images_hr/10000.jpg")
    image, info = decode_image(data, max_pixels=CAP)
    assert (info.format, image.mode, image.size) == ("JPEG", "RGB", (info.width, info.height))
    data, ref = resolver.read("thumbs_60x80.zip#1163.jpg")
    image, info = decode_image(data, max_pixels=CAP)
    assert ref.endswith("thumbs_60x80.zip#1163.jpg") and (info.width, info.height) == (60, 80)
    grocery = ImageResolver([GROCERY], max_bytes=5 << 20)
    assert decode_image(grocery.read("iconic/00_Golden-Delicious.jpg")[0], max_pixels=CAP)[1].format == "JPEG"


def test_allowed_formats_decode_to_rgb():
    for fmt, data in (("PNG", _encoded("PNG", "RGBA")), ("WEBP", _encoded("WEBP")), ("GIF", _encoded("GIF", "P")),
                      ("JPEG", _encoded("JPEG"))):
        image, info = decode_image(data, max_pixels=CAP)
        assert info.format == fmt and image.mode == "RGB"


def test_truncated_jpeg_is_400():
    data = (MYNTRA / "images_hr" / "10000.jpg").read_bytes()
    with pytest.raises(BadImage, match="truncated") as err:
        decode_image(data[: len(data) // 2], max_pixels=CAP)
    assert err.value.http_status == 400


def test_corrupt_png_is_400():
    data = bytearray(_encoded("PNG"))
    data[40:60] = b"\xff" * 20
    with pytest.raises(BadImage) as err:
        decode_image(bytes(data), max_pixels=CAP)
    assert err.value.http_status == 400


def test_pixel_bomb_is_refused_from_the_header():
    bomb = png_header_only(8000, 8000)  # 64 Mpx claimed in 100 bytes
    assert len(bomb) < 200
    with pytest.raises(BadImage, match="pixel limit") as err:
        decode_image(bomb, max_pixels=CAP)
    assert err.value.http_status == 413
    huge = png_header_only(50000, 50000)  # beyond Pillow's own bomb limit: still our 413
    with pytest.raises(BadImage, match="pixel limit") as err:
        decode_image(huge, max_pixels=CAP)
    assert err.value.http_status == 413


@pytest.mark.parametrize("fmt,name", [("BMP", "BMP"), ("TIFF", "TIFF")])
def test_formats_outside_the_allowlist_are_415(fmt, name):
    with pytest.raises(BadImage, match=f"a {name} file; only JPEG, PNG, WebP or GIF") as err:
        decode_image(_encoded(fmt), max_pixels=CAP)
    assert err.value.http_status == 415


def test_format_is_checked_from_bytes_not_the_name(tmp_path):
    disguised = tmp_path / "photo.jpg"
    disguised.write_bytes(_encoded("BMP"))
    data, _ = ImageResolver([tmp_path], max_bytes=1 << 20).read("photo.jpg")
    with pytest.raises(BadImage) as err:
        decode_image(data, max_pixels=CAP)
    assert err.value.http_status == 415
    with pytest.raises(BadImage, match="not a recognised image format"):
        check_format(b"hello world, not an image")
    with pytest.raises(BadImage, match="empty"):
        check_format(b"")


def test_byte_limit_is_413(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(_encoded("PNG") + b"\0" * 2048)
    with pytest.raises(BadImage, match="byte limit") as err:
        ImageResolver([tmp_path], max_bytes=1024).read("big.png")
    assert err.value.http_status == 413
    with pytest.raises(BadImage, match="byte limit"):
        decode_image(big.read_bytes(), max_pixels=CAP, max_bytes=1024)


def test_missing_files_members_and_escapes(resolver, tmp_path):
    with pytest.raises(BadImage, match="not found"):
        resolver.read("images_hr/does-not-exist.jpg")
    with pytest.raises(BadImage, match="not in archive"):
        resolver.read("thumbs_60x80.zip#nope.jpg")
    with pytest.raises(BadImage, match="leaves the images folder"):
        resolver.read("../grocery_store/products.csv")
    with pytest.raises(BadImage, match="image column is empty"):
        resolver.read("  ")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(BadImage, match="cannot be opened"):
        ImageResolver([tmp_path], max_bytes=1 << 20).read("broken.zip#a.jpg")


def test_zip_member_over_the_byte_limit_is_refused_before_reading(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("big.jpg", b"\xff\xd8\xff" + b"\0" * 5000)
    with pytest.raises(BadImage, match="byte limit") as err:
        ImageResolver([tmp_path], max_bytes=1000).read("a.zip#big.jpg")
    assert err.value.http_status == 413
