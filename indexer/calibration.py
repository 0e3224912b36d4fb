"""Score floors measured per index version: how well a query that means nothing matches this catalog.

A cosine floor keeps nonsense queries from returning random products, but no constant fits every catalog: the best
match of any query, sensible or not, scores higher the more products there are (on the 44,441-product Myntra index
random strings reach 0.39 on fused vectors at p90, on a 2,500-product one 0.35, where "red dress" tops out at 0.38).
So each published version records, per vector kind, the given percentile of the top-1 cosine of random-letter
strings against its own vectors, and search uses that as its floor.
"""
from __future__ import annotations

import random
import string
from typing import Mapping

import faiss
import numpy as np

NONSENSE_QUERIES = 200
FLOOR_PERCENTILE = 90
# The multilingual model (e5) crowds every cosine into ~0.8-0.92: on the grocery catalog random strings reach 0.846
# (p50) / 0.870 (p90) against it, while the 80 store titles score 0.859 / 0.892 (p10 / p50) with their own product.
# So its floor sits at the nonsense median (bench/multilingual.py), and random strings are told apart by where they
# lie instead (`nonsense_centroid`): with the median floor alone, 30 of 50 random strings found up to 35 products
# on the 381-product test home.
MULTILINGUAL_FLOOR_PERCENTILE = 50
# What shoppers type that is shorter than a title: the phrases a floor must not cut (bench/hybrid.py and the tests
# check floors against them; they score lower than titles do).
SHOPPER_PHRASES = ("shirt", "watch", "jeans", "kurta", "saree", "sunglasses", "perfume", "socks", "handbag", "wallet",
                   "sandals", "heels", "backpack", "belt", "cap", "red dress", "black shoes", "blue jeans",
                   "white sneakers", "leather belt", "floral top", "sports shoes", "formal shirt", "gold earrings",
                   "men watch", "women handbag", "kids tshirt", "striped shirt", "denim jacket", "running shoes",
                   "green kurta", "pink top", "casual shoes", "analog watch", "silver ring", "lipstick", "deodorant",
                   "track pants", "flip flops", "scarf")


def nonsense_queries(n: int = NONSENSE_QUERIES, seed: int = 0) -> list[str]:
    """`n` strings of one to three random-letter words (4-9 letters): queries no catalog should answer."""
    rng = random.Random(seed)
    return [" ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9)))
                     for _ in range(rng.randint(1, 3))) for _ in range(n)]


def top1_scores(index: faiss.Index, queries: np.ndarray) -> np.ndarray:
    """The best cosine each query vector reaches in `index` (empty when the index is)."""
    if index.ntotal == 0:
        return np.zeros(0, dtype=np.float32)
    scores, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
    return scores[:, 0]


def nonsense_centroid(queries: np.ndarray) -> list[float]:
    """The normalised mean of the nonsense queries' vectors (the multilingual model's random strings cluster around
    it, real words of any language lie farther off), rounded for the manifest."""
    mean = queries.mean(axis=0)
    return [round(float(x), 5) for x in mean / np.linalg.norm(mean)]


def score_floors(queries: np.ndarray, indexes: Mapping[str, faiss.Index],
                 percentile: float = FLOOR_PERCENTILE) -> dict[str, float]:
    """Per kind, the `percentile` of the nonsense queries' (their vectors, `queries`: one encoding serves every
    kind of a model and its centroid) top-1 cosine against that kind's index (rounded)."""
    floors = {}
    for kind, index in indexes.items():
        scores = top1_scores(index, queries)
        if len(scores):
            floors[kind] = round(float(np.percentile(scores, percentile)), 4)
    return floors
