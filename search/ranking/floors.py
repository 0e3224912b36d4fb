"""Score floors: which vector hits are good enough to keep, so a nonsense query finds little instead of everything."""
from __future__ import annotations

from indexer.config import SearchSettings
from indexer.vectors import LoadedVersion
from search.query import Ranking


def floor(ranking: Ranking, min_score: float, margin: float | None = None) -> Ranking:
    """Hits at or above the absolute floor and, for text, within `margin` of the best hit (a nonsense query
    scores low everywhere and keeps few; a clear one drops the long tail of weak matches)."""
    if not ranking:
        return ranking
    cut = min_score if margin is None else max(min_score, ranking[0][1] - margin)
    return [(key, s) for key, s in ranking if s >= cut]


def text_floor(config: SearchSettings, version: LoadedVersion, kind: str) -> float:
    """The floor for a text query's hits on `kind` vectors of `version` (configured, else measured at publish)."""
    return config.text_floor(kind, version.manifest.get("score_floors", {}))
