"""Which images an index run reads: `--read-text on` every image, `off` none, `auto` what the catalog is worth.

`auto` decides once per run, before ingesting, from readings of images spread evenly over the catalog (a catalog
is often sorted by category, so its first images say little: the grocery catalog starts with 28 fruits and its
cartons come after): it reads the whole catalog when at least `AUTO_MIN_TEXT_SHARE` of them carry a legible word,
else none of it. A grocery catalog (cartons, jars) passes, a fashion catalog does not, and there each reading would
cost a detector pass for nothing. Sampled images read before (same bytes, same reader) are not read again, so a
rerun's decision costs `AUTO_SAMPLE` file reads; `--read-text on` reads what auto skipped.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

from indexer.reading.words import words

AUTO_SAMPLE = 16            # images auto reads to decide
AUTO_MIN_TEXT_SHARE = 0.25  # share of them with a legible word for auto to read the catalog

T = TypeVar("T")


def has_words(lines: Sequence[str]) -> bool:
    """Whether an image's lines hold at least one word search can use."""
    return any(words(line) for line in lines)


def auto_reads(with_text: int, read: int) -> bool:
    """auto's decision from `read` usable readings of which `with_text` carry words."""
    return read > 0 and with_text >= AUTO_MIN_TEXT_SHARE * read


def spread(items: Sequence[T], n: int = AUTO_SAMPLE) -> list[T]:
    """`n` items evenly spaced over `items` (all of them when there are fewer)."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step + step / 2)] for i in range(n)]
