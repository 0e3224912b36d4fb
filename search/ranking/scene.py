"""Scene photos (shop the look): a room with many products in it returns the products in it, each with the region
of the photo it matched best.

The photo is cut into overlapping square crops at a few scales (`search.regions`), the crops with the fewest edges
(bare wall, floor) are dropped, and the rest are encoded in one batch with the whole photo. Each region's cosines
against the catalog's product photos are turned into z-scores within that region (a busy crop that is a little
like everything counts less than one crop that is very like one product), and half of each product's mean z
over the photo's regions is taken off (a product that is a little like every region, a hub, is not evidence of
anything). A product scores its best region, plus a vote for each region whose best match it is.
Parameters were chosen on the even-positioned half of the IKEA rooms (bench/rooms.py, bench/RESULTS.md).

Whether a photo is a scene at all: a photo with a plain border (a studio shot, `plain_border`) is not, before
anything is encoded; otherwise (`is_scene`) the crops of a single-product photo, studio shot or shelf of
apples, look like the whole photo; the crops of a room are other things (a lamp, a cushion, a rug).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from indexer.config import SearchSettings
from search.query import Ranking
from search.regions import Box, grid_boxes, plain_border, propose
from search.state import IndexState
from search.timing import StageTimer
from search.vectors import stored_vectors, vector_search

if TYPE_CHECKING:
    from indexer.model.encoder import Encoder

SCALES = (0.35, 0.25)      # crop sides, as shares of the photo's shorter side
OVERLAP = 0.5              # neighbouring crops share half a side
DETECT_SCALE = 0.6         # the few large crops `is_scene` compares with the whole photo
DETECT_OVERLAP = 0.2
HUB_SHARE = 0.5            # share of a product's mean z over the regions taken off its score
VOTE = 1.0                 # z a product gains for each region whose best match it is (overlapping crops agree)
REGION_HITS = 50           # nearest products taken from each region; their union is scored against every region


@dataclass
class SceneRanking:
    """A scene photo's ranking, the regions searched, and for each ranked product the region it matched best."""

    ranking: Ranking
    regions: list[Box]
    region_of: dict[int, int]  # product key -> index into `regions`
    width: int
    height: int


def detection_boxes(image: Image.Image) -> list[Box]:
    """The few large crops scene detection encodes (also searched, when the photo is a scene)."""
    return grid_boxes(image.width, image.height, [DETECT_SCALE], DETECT_OVERLAP)


def detect_scene(encoder: Encoder, image: Image.Image, threshold: float,
                 plain: float) -> tuple[list[Box], np.ndarray] | None:
    """When `image` is a scene, the boxes encoded to tell (the whole photo first) and their vectors, for
    `rank_scene` to search; None for a product photo (whose answer is then the photo search's, unchanged). A photo
    whose border is at least `plain` plain (`plain_border`: a studio shot) is a product photo without encoding."""
    if plain_border(image) >= plain:
        return None
    boxes = detection_boxes(image)
    vectors = encode_regions(encoder, image, boxes)
    if not is_scene(vectors[0], vectors[1:], threshold):
        return None
    return [Box(0, 0, *image.size), *boxes], vectors


def is_scene(whole: np.ndarray, crops: np.ndarray, threshold: float) -> bool:
    """A scene when the large crops' mean cosine with the whole photo is under `threshold` (their vectors are
    L2-normalised): a product photo's crops are parts of that product, a room's are other objects."""
    if len(crops) == 0:
        return False
    return float(np.mean(crops @ whole)) < threshold


def rank_scene(state: IndexState, config: SearchSettings, encoder: Callable[[], Encoder], image: Image.Image,
               allowed: np.ndarray | None, timer: StageTimer,
               known: tuple[list[Box], np.ndarray] | None = None) -> SceneRanking:
    """Rank products for a scene photo. `known` holds boxes already encoded, the whole photo first, with their
    vectors (as `detect_scene` returns them), so scene detection's crops are not encoded twice."""
    boxes, vectors = (list(known[0]), [known[1]]) if known is not None else ([Box(0, 0, *image.size)], [])
    with timer.stage("regions"):
        have = set(boxes)
        fresh = [b for b in propose(image, SCALES, OVERLAP, config.scene_keep, config.scene_regions)
                 if b not in have]
    with timer.stage("encode"):
        crops = [b.crop(image) for b in fresh]
        vectors.append(encoder().encode_images(crops if known is not None else [image, *crops]))
    boxes += fresh
    regions = np.vstack(vectors)
    with timer.stage("vector_search"):
        keys = list(dict.fromkeys(key for vec in regions for key, _ in vector_search(
            state.version, config.image_kind, vec, allowed, REGION_HITS)))
        stored = stored_vectors(state, config.image_kind, keys)
        keys = [k for k in keys if k in stored]
        if not keys:
            return SceneRanking([], boxes, {}, image.width, image.height)
        cosines = regions @ np.stack([stored[k] for k in keys]).T          # regions x candidates
        scores, best = region_scores(cosines, catalog_spread(state, config.image_kind, regions, cosines))
    order = np.argsort(-scores)[: config.candidates]
    return SceneRanking([(keys[i], float(scores[i])) for i in order], boxes,
                        {keys[i]: int(best[i]) for i in order}, image.width, image.height)


def encode_regions(encoder: Encoder, image: Image.Image, boxes: list[Box]) -> np.ndarray:
    """The whole photo's vector, then each box's, in one batch."""
    return encoder.encode_images([image, *(b.crop(image) for b in boxes)])


def catalog_spread(state: IndexState, kind: str, regions: np.ndarray,
                   cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each region's mean and standard deviation of cosine over the whole catalog (from the version's vector
    moments); over the candidates alone where the index keeps no vectors to take moments of (IVF-PQ)."""
    try:
        mean, second = state.moments(kind)
    except RuntimeError:
        return cosines.mean(axis=1), cosines.std(axis=1)
    mu = regions @ mean
    var = np.einsum("rd,de,re->r", regions, second, regions) - mu ** 2
    return mu, np.sqrt(np.maximum(var, 1e-12))


def region_scores(cosines: np.ndarray, spread: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate (column): its best hub-corrected z-score over the regions (rows) plus VOTE for every region
    whose best candidate it is, and the region of that best z-score."""
    mu, sd = spread
    z = (cosines - mu[:, None]) / sd[:, None]
    z -= HUB_SHARE * z.mean(axis=0, keepdims=True)
    best = z.argmax(axis=0)
    votes = np.bincount(z.argmax(axis=1), minlength=z.shape[1])
    return z[best, np.arange(z.shape[1])] + VOTE * votes, best
