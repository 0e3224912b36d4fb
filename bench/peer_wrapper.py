"""clip-retrieval 2.45 with its known bugs worked around, for bench/peer.py: run it with the peer's own venv
(`/tmp/peer-venv/bin/python bench/peer_wrapper.py inference|index|back ...`, see bench/RESULTS.md "peer"), never
with ShopLens's. The installed files stay as pip wrote them; the fixes are patches applied here at start.

1. `folder_to_keys` keys a "files" dataset by each file's name *with* its extension, so no caption ("1163.txt")
   ever meets its image ("1163.jpg"): the reader fails with KeyError '1163.txt'. Patched to key by the name
   without the extension, as the docs describe.
"""
from __future__ import annotations

import sys
from pathlib import Path


def _folder_to_keys(folder, enable_text=True, enable_image=True, enable_metadata=False):
    """clip_retrieval's folder_to_keys, keyed by the path without its extension."""
    path = Path(folder)

    def files(patterns: tuple[str, ...]) -> dict[str, Path]:
        return {f.relative_to(path).with_suffix("").as_posix(): f for p in patterns for f in path.glob(f"**/{p}")}

    images = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.webp", "*.PNG", "*.JPG", "*.JPEG", "*.BMP", "*.WEBP")
    text_files = files(("*.txt",)) if enable_text else None
    image_files = files(images) if enable_image else None
    metadata_files = files(("*.json",)) if enable_metadata else None
    present = [set(f) for f in (text_files, image_files, metadata_files) if f is not None]
    keys = sorted(set.intersection(*present)) if present else []
    return keys, text_files, image_files, metadata_files


def _patch() -> None:
    from clip_retrieval.clip_inference import main as inference_main, reader

    reader.folder_to_keys = _folder_to_keys
    inference_main.folder_to_keys = _folder_to_keys


def main() -> None:
    _patch()
    from clip_retrieval.cli import main as cli

    sys.argv = ["clip-retrieval", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
