"""Printed text as search reads it back from the store (image_texts, keyed by the image's sha256)."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.reading.reader import READER_VERSION
from indexer.store import ImageText


def printed_lines(session: Session, image_hashes: Iterable[str | None]) -> dict[str, list[str]]:
    """The text lines this reader read on each of `image_hashes` (images without text, or not read, are absent)."""
    wanted = sorted({h for h in image_hashes if h})
    found: dict[str, list[str]] = {}
    for i in range(0, len(wanted), 500):
        for sha, lines in session.execute(select(ImageText.sha256, ImageText.lines).where(
                ImageText.sha256.in_(wanted[i:i + 500]), ImageText.reader == READER_VERSION,
                ImageText.outcome == "read")):
            found[sha] = [line["text"] for line in lines]
    return found
