"""What a shopper asks and what search answers, as plain data shared by the engine, the CLI and the API."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from PIL import Image

from search.filters import Filters
from search.products import ProductCard
from search.regions import Box

Ranking = list[tuple[int, float]]  # (product key, score), best first: what every ranker returns

# "red dress without logo", "red dress w/o logo": everything after the word is what to avoid.
_WITHOUT = re.compile(r"(?:^|\s)(?:without|w/o)\s+(?P<neg>.+)$", re.IGNORECASE)
# "red dress -logo": a leading minus marks one word to avoid.
_MINUS = re.compile(r"(?:^|\s)-(?P<word>[^\s-][^\s]*)")


def split_negative(text: str) -> tuple[str, str]:
    """Split a query into what to find and what to avoid: 'tee without logo -stripes' -> ('tee', 'logo stripes')."""
    negatives: list[str] = []
    match = _WITHOUT.search(text)
    if match:
        negatives.append(match.group("neg").strip())
        text = text[:match.start()]
    negatives.extend(m.group("word") for m in _MINUS.finditer(text))
    text = _MINUS.sub(" ", text)
    return " ".join(text.split()), " ".join(" ".join(negatives).split())


@dataclass
class Query:
    """One search: text and/or a photo (or a product to find look-alikes of), filters and the page wanted."""

    text: str = ""
    image: Image.Image | None = None
    negative: str = ""              # text to steer away from, added to what the query text says after "without"
    like: str | None = None         # product id: find products similar to it
    image_weight: float | None = None  # photo's share of a photo + text query; None: the configured default
    filters: Filters = field(default_factory=Filters)
    k: int = 10
    page: int = 1
    mode: str | None = None         # text queries: hybrid | lexical | image | text | fused; None: configured default
    collapse: bool | None = None    # fold near-duplicates; None: the configured default
    scene: str | None = None        # a photo alone: auto | on | off (search it region by region); None: configured


@dataclass
class Hit:
    """One result: the product's facts, its score, and the ids of near-duplicates folded into it."""

    product: ProductCard
    score: float
    duplicates: list[str] = field(default_factory=list)
    region: int | None = None       # scene photos: index into SearchResult.regions of the region it matched best


@dataclass
class SearchResult:
    """A page of hits plus what the page needs around it: totals, facets, the index version, stage timings."""

    hits: list[Hit]
    total: int
    page: int
    k: int
    facets: dict
    index_version: str
    kind: str                        # text | image | image+text | scene | similar | browse
    mode: str                        # how it was answered (hybrid, lexical, a vector kind)
    text: str = ""
    negative: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    regions: list[Box] = field(default_factory=list)  # scene photos: the regions searched, in photo pixels
    photo_size: tuple[int, int] | None = None         # scene photos: (width, height) the boxes are measured in

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.k))

    def page_regions(self) -> list[tuple[int, Box, list[str]]]:
        """The regions this page's hits matched best: (region index, box, ids of those hits), by index."""
        matched: dict[int, list[str]] = {}
        for h in self.hits:
            if h.region is not None:
                matched.setdefault(h.region, []).append(h.product.id)
        return [(i, self.regions[i], matched[i]) for i in sorted(matched)]

    def to_dict(self) -> dict:
        """The result as the CLI's --json and the API print it (the API adds URLs to each result). A scene photo's
        results carry `region` (the box they matched best) and `regions` lists those boxes with their results."""
        query = {"kind": self.kind, "mode": self.mode, "text": self.text, "negative": self.negative,
                 "scene": self.kind == "scene"}
        if self.photo_size is not None:
            query["photo_size"] = {"width": self.photo_size[0], "height": self.photo_size[1]}
        results = [{"id": h.product.id, "title": h.product.title, "score": round(h.score, 6),
                    "brand": h.product.brand, "category": h.product.category, "colour": h.product.colour,
                    "gender": h.product.gender, "price": h.product.price, "currency": h.product.currency,
                    "duplicates": h.duplicates} for h in self.hits]
        for item, h in zip(results, self.hits):
            if h.region is not None:
                item["region"] = {"id": h.region, **self.regions[h.region].as_dict()}
        return {
            "query": query,
            "index_version": self.index_version, "total": self.total, "page": self.page, "pages": self.pages,
            "k": self.k,
            "results": results,
            "regions": [{"id": i, **box.as_dict(), "results": ids} for i, box, ids in self.page_regions()],
            "facets": self.facets,
            "timings_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }
