"""Printed text as search reads it back from the store (image_texts, keyed by the image's sha256)."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.reading.reader import READER_VERSION
from indexer.reading.words import terms
from indexer.store import ImageText


def printed_lines(session: Session, image_hashes: Iterable[str | None]) -> dict[str, list[str]]:
    """The lines this reader read on each of `image_hashes` that hold a word or an amount (`terms`: 3+ letters, or
    "1,5%"; scraps such as "Q" or "0" read on an aubergine's skin are stored, but not shown or searched). Images
    without any are absent."""
    return {sha: [text for text, _ in lines] for sha, lines in printed_readings(session, image_hashes).items()}


def printed_readings(session: Session, image_hashes: Iterable[str | None]) -> dict[str, list[tuple[str, float]]]:
    """As `printed_lines`, each line with the reader's confidence in it (an answer quoting a label says how
    sure the reading was)."""
    wanted = sorted({h for h in image_hashes if h})
    found: dict[str, list[tuple[str, float]]] = {}
    for i in range(0, len(wanted), 500):
        for sha, lines in session.execute(select(ImageText.sha256, ImageText.lines).where(
                ImageText.sha256.in_(wanted[i:i + 500]), ImageText.reader == READER_VERSION,
                ImageText.outcome == "read")):
            kept = [(line["text"], float(line.get("confidence", 0.0))) for line in lines if terms(line["text"])]
            if kept:
                found[sha] = kept
    return found
