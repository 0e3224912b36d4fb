"""Captions: one sentence describing a photo, built from the same visual reads as answers and the text read on it,
so it states nothing the reads did not find: "Blue Tshirts for Men, printed 'NIKE'". Templated, not phrased by a
language model, which keeps it instant enough to be every product image's `alt` text."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from search.ask.reads import Neighbour, Read, Vocabulary

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

CAPTION_TOPICS = ("type", "colour", "pattern", "gender")
PLAIN_PATTERNS = {"solid", "plain"}  # not worth a word in a caption
MAX_PRINTED = 40                     # characters of printed text quoted


@dataclass(frozen=True)
class Caption:
    """The sentence and the reads it was built from (value and confidence per topic), for the API."""

    caption: str
    reads: dict[str, Read] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"caption": self.caption, "printed": self.printed,
                "reads": {t: {"value": r.value, "confidence": round(r.confidence, 4), "used": r.sure}
                          for t, r in self.reads.items()}}


def caption_of(vocabulary: Vocabulary, encoder: Encoder, vector: np.ndarray, printed: Sequence[str],
               neighbours: Sequence[Neighbour] = ()) -> Caption:
    """The caption of a photo from its vector's reads (with its nearest catalog products' vote) and the lines
    read on it (confident reads only)."""
    reads = vocabulary.read_all(encoder, vector, CAPTION_TOPICS, neighbours)
    sure = {t: r.value for t, r in reads.items() if r.sure}
    words = [sure.get("colour")]
    if (sure.get("pattern") or "").lower() not in PLAIN_PATTERNS:
        words.append(sure.get("pattern"))
    words.append(sure.get("type") or "product")
    sentence = " ".join(w for w in words if w)
    if sure.get("gender"):
        sentence += f" for {sure['gender']}"
    quote = _quote(printed)
    if quote:
        sentence += f", printed '{quote}'"
    return Caption(sentence[0].upper() + sentence[1:], reads, list(printed))


def _quote(printed: Sequence[str]) -> str:
    """The longest printed line, cut at a word to MAX_PRINTED characters ('' when nothing was read)."""
    if not printed:
        return ""
    line = max(printed, key=len).strip()
    if len(line) <= MAX_PRINTED:
        return line
    return line[:MAX_PRINTED].rsplit(" ", 1)[0] + "…"
