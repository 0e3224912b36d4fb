"""More like this: the products whose stored vectors are nearest a product's own (the product itself left out)."""
from __future__ import annotations

import numpy as np

from indexer.config import SearchSettings
from indexer.errors import NotFound
from search.query import Ranking
from search.ranking.floors import floor
from search.state import IndexState
from search.timing import StageTimer
from search.vectors import stored_vectors, vector_search


def rank_similar(state: IndexState, config: SearchSettings, product_id: str, allowed: np.ndarray | None,
                 timer: StageTimer) -> Ranking:
    """Look-alikes of `product_id` by its `similar_kind` vector, above the photo floor; NotFound for an unknown
    product or one this version has no vector of."""
    facts = state.table.by_id.get(product_id)
    if facts is None:
        raise NotFound(f"no product with id {product_id!r}")
    kind = config.similar_kind
    with timer.stage("encode"):
        vec = stored_vectors(state, kind, [facts.key]).get(facts.key)
    if vec is None:
        raise NotFound(f"product {product_id!r} has no {kind} vector in index version {state.version.name}",
                       hint="Re-run `shoplens index` to embed it.")
    with timer.stage("vector_search"):
        ranking = vector_search(state.version, kind, vec, allowed, config.candidates + 1)
    return floor([(key, s) for key, s in ranking if key != facts.key], config.min_image_score)
