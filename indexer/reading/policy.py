"""Which images an index run reads: `--read-text on` every image, `off` none, `auto` what the catalog is worth.

`auto` decides once per run, before ingesting, from readings of images spread evenly over the catalog (a catalog
is often sorted by category, so its first images say little: the grocery catalog starts with 28 fruits and its
cartons come after): it reads the whole catalog when at least `AUTO_MIN_TEXT_SHARE` of them carry a legible word,
else none of it. A grocery catalog (cartons, jars) passes, a fashion catalog does not, and there each reading would
cost a detector pass for nothing. Sixteen images decide only a clear case (a share of at most half the threshold,
or at least twice it); between, 16 more are read, interleaved with the first, and the 32 decide: on a
1,000-product Myntra subset (about one image in ten shows a word: a Levi's tab, "LAKERS" on a tee) the first 16
held 4 with words, exactly the threshold, and auto read the whole catalog. Sampled images read before (same
bytes, same reader) are not read again, so a rerun's decision costs `AUTO_SAMPLE` file reads (or twice that);
`--read-text on` reads what auto skipped.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

from indexer.reading.words import words

AUTO_SAMPLE = 16            # images auto reads to decide, per round (a second round only where the first is unclear)
AUTO_MIN_TEXT_SHARE = 0.25  # share of them with a legible word for auto to read the catalog

T = TypeVar("T")


def has_words(lines: Sequence[str]) -> bool:
    """Whether an image's lines hold at least one word search can use."""
    return any(words(line) for line in lines)


def auto_reads(with_text: int, read: int, *, final: bool = True) -> bool | None:
    """auto's decision from `read` usable readings of which `with_text` carry words; None (read more) when not
    `final` and the share lies between half and twice AUTO_MIN_TEXT_SHARE."""
    if read == 0:
        return False if final else None
    share = with_text / read
    if final or share <= AUTO_MIN_TEXT_SHARE / 2 or share >= 2 * AUTO_MIN_TEXT_SHARE:
        return share >= AUTO_MIN_TEXT_SHARE
    return None


def spread(items: Sequence[T], n: int = AUTO_SAMPLE, *, offset: float = 0.5) -> list[T]:
    """`n` items evenly spaced over `items`, each `offset` of a step into its stretch (all of them when there are
    fewer); offsets 0.5 and 0 interleave."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step + step * offset)] for i in range(n)]
