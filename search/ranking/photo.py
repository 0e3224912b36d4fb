"""Photo queries: product photos like the shopper's photo, optionally steered by words ("like this, but in blue")."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from indexer.config import SearchSettings
from indexer.errors import BadInput
from search.query import Ranking
from search.ranking.floors import floor, text_floor
from search.ranking.printed import with_printed
from search.ranking.text import avoided, text_vector
from search.state import IndexState
from search.timing import StageTimer
from search.vectors import similarities, vector_search

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder


def rank_photo(state: IndexState, config: SearchSettings, encoder: Callable[[], Encoder], image: Image.Image,
               text: str, negative: str, weight: float | None, allowed: np.ndarray | None,
               timer: StageTimer, photo_words: str = "") -> Ranking:
    """A photo alone: nearest product photos above the photo floor. With text ("like this, but in blue"): late
    fusion, each candidate scored w * cos(photo, product photo) + (1 - w) * cos(text, product text), so the text
    speaks to product texts (where it is understood best) and the photo to product photos. A hit must match
    the photo or the words on its own (each part above its floor); the blend only orders them. (A floor on the
    blended score would ask a one-word text to match as well as a whole title does, and drop look-alikes.)
    `weight` is the photo's share w (None: the configured one); `encoder` is called once the weight is valid.
    `photo_words`, the words read on the photo, fuse with the products' printed words and titles
    (search.ranking.printed): on a photo alone with its visual score, on a photo with text with the blended score,
    the typed words joining the photo's ("this, but lactose free" meets LAKTOSFRI on the carton); a photo without
    them is ranked as before."""
    w = config.image_weight if weight is None else weight
    if not 0.0 <= w <= 1.0:
        raise BadInput("image_weight must lie between 0 and 1")
    enc = encoder()
    with timer.stage("encode"):
        photo_vec = enc.encode_images([image])[0]
        text_vec = text_vector(enc, text, negative, config.negative_weight) if text else None
    with timer.stage("vector_search"):
        by_photo = vector_search(state.version, config.image_kind, photo_vec, allowed, config.candidates)
        if text_vec is None and not photo_words:
            ranking = floor(by_photo, config.min_image_score)
        elif text_vec is None:
            ranking = with_printed(state, config, config.image_kind, photo_vec, by_photo, photo_words, allowed,
                                   titles=True, weight=config.photo_text_weight, min_score=config.min_image_score,
                                   timer=timer)
        else:
            by_text = vector_search(state.version, "text", text_vec, allowed, config.candidates)
            keys = list(dict.fromkeys([k for k, _ in by_photo] + [k for k, _ in by_text]))
            photo_sims = similarities(state, config.image_kind, photo_vec, keys)
            text_sims = similarities(state, "text", text_vec, keys)
            words_floor = text_floor(config, state.version, "text")
            ranking = sorted(((k, w * photo_sims[k] + (1.0 - w) * text_sims[k]) for k in keys
                              if k in photo_sims and k in text_sims
                              and (photo_sims[k] >= config.min_image_score or text_sims[k] >= words_floor)),
                             key=lambda kv: -kv[1])
            if photo_words:  # the blend passed its floors above; products only the words name join at min_match
                ranking = with_printed(state, config, config.image_kind, photo_vec, ranking, f"{photo_words} {text}",
                                       allowed, titles=True, weight=config.photo_text_weight, min_score=-1.0,
                                       timer=timer)
    if negative:
        with timer.stage("lexical"):
            avoid = avoided(state, negative, config.candidates)
        ranking = [(key, s) for key, s in ranking if key not in avoid]
    return ranking
