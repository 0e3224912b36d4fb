"""Adapting the projection heads to one catalog: the training half of `shoplens adapt` (indexer/adaptation.py runs it).

Every catalog is a set of image–text pairs. The towers stay frozen, so their features are computed once (cached by
image sha256 and text) and the heads train in seconds, starting from the installed heads and pulled towards them
(L2-SP) so the model keeps what it knew. Shoppers' photos are not studio shots, so each catalog image also gives
augmented "wild" views (clutter behind the product, perspective, crops, colour casts, blur); the heads learn to map
a view next to its product (self-supervision: no shopper photo is ever used). What is served is a weight-space mix
of the starting and the trained heads (`mix_heads`), which forgets less of what the installed heads knew for little
of the catalog's gain.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from indexer.model.lite import LiteCLIP
from indexer.model.training.features import embed_features, image_features, text_features
from indexer.model.training.metrics import retrieval_metrics
from indexer.model.training.recipe import Recipe
from indexer.model.training.train import aux_state, fit, heads_state, load_heads

log = logging.getLogger(__name__)

MIX_GRID = (0.5, 0.6, 0.75, 0.9, 1.0)  # shares of the trained heads `mix_heads` tries (0: the starting heads)
AUGMENT_VERSION = 1  # part of the cache key of augmented views: bump when `wild_view` changes
WHITE = 236  # catalogue backgrounds: pixels with every channel above this are replaced by clutter


@dataclass(frozen=True)
class CatalogItem:
    """One product as adaptation sees it: its id, title, full text (what its text vector is built from), and the
    sha256 and a loader of its image."""

    id: str
    title: str
    text: str
    image_hash: str
    load: Callable[[], Image.Image]


@dataclass
class CatalogFeatures:
    """Frozen-tower features of a catalog, row-aligned with its items."""

    views: np.ndarray  # (n, 1 + n_views, feature_dim): the clean image first
    titles: np.ndarray  # (n, 384)
    texts: np.ndarray  # (n, 384)
    groups: np.ndarray  # (n,) products that answer the same query: same title or byte-identical image


def answer_groups(items: list[CatalogItem]) -> np.ndarray:
    """Union of "same title (case-insensitive)" and "same image bytes": variants sharing a photo, or one title on
    two photos, are each other's right answers, not negatives."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, item in enumerate(items):
        for key in (("title", item.title.lower()), ("image", item.image_hash)):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(items))]
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(r, len(ids)) for r in roots])


def wild_view(image: Image.Image, background: Image.Image, rng: random.Random) -> Image.Image:
    """A catalogue image as a shopper might photograph it: on a cluttered background (another catalogue image,
    enlarged and blurred), seen at an angle, cropped, under a colour cast, slightly blurred."""
    from torchvision.transforms import functional as TF

    image = image.convert("RGB")
    w, h = image.size
    arr = np.asarray(image)
    clutter = background.convert("RGB").resize((w, h)).filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    mask = (arr.min(axis=2) > WHITE)[..., None]
    image = Image.fromarray(np.where(mask, np.asarray(clutter), arr))
    if rng.random() < 0.7:
        d = rng.uniform(0.05, 0.25)
        corners = [[0, 0], [w, 0], [w, h], [0, h]]
        moved = [[x + rng.uniform(-d, d) * w, y + rng.uniform(-d, d) * h] for x, y in corners]
        image = TF.perspective(image, corners, moved, fill=[int(v) for v in np.asarray(clutter).mean((0, 1))])
    scale = rng.uniform(0.55, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = image.crop((x, y, x + cw, y + ch))
    image = TF.adjust_brightness(image, rng.uniform(0.6, 1.3))
    image = TF.adjust_contrast(image, rng.uniform(0.7, 1.3))
    image = TF.adjust_saturation(image, rng.uniform(0.6, 1.4))
    image = TF.adjust_hue(image, rng.uniform(-0.04, 0.04))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return image


def catalog_features(model: LiteCLIP, tokenizer, preprocess, items: list[CatalogItem], cache_dir: Path, *,
                     n_views: int, seed: int = 0) -> CatalogFeatures:
    """Tower features of the items' images (clean and `n_views` wild views each), titles and texts; cached, so a
    second adaptation of the same catalog computes nothing."""
    by_hash = {item.image_hash: item for item in items}
    hashes = sorted(by_hash)
    clean = image_features(model, preprocess, hashes, cache_dir, names=hashes,
                           load=lambda h: by_hash[h].load(), desc="catalog images")
    rows = {h: i for i, h in enumerate(hashes)}
    views = [clean]
    for v in range(n_views):
        def load_view(h: str, v: int = v) -> Image.Image:
            rng = random.Random(f"{seed}:{v}:{h}")
            return wild_view(by_hash[h].load(), by_hash[rng.choice(hashes)].load(), rng)

        views.append(image_features(model, preprocess, hashes, cache_dir, load=load_view,
                                    names=[f"{h}#wild{AUGMENT_VERSION}.{seed}.{v}" for h in hashes],
                                    desc=f"wild views {v + 1}/{n_views}"))
    order = [rows[item.image_hash] for item in items]
    stacked = np.stack([v[order] for v in views], axis=1)
    titles = text_features(model, tokenizer, [item.title for item in items], cache_dir, desc="catalog titles")
    texts = text_features(model, tokenizer, [item.text for item in items], cache_dir, desc="catalog texts")
    return CatalogFeatures(stacked, titles, texts, answer_groups(items))


def heldout_metrics(model: LiteCLIP, feats: CatalogFeatures, rows: list[int]) -> dict[str, dict[str, float]]:
    """What search would see on the held-out products, with the model's full vectors (every block): titles →
    images and images → product texts among the held-out products; relevant = same answer group."""
    if not rows:
        return {}
    groups = feats.groups[rows]
    relevant = groups[:, None] == groups[None, :]
    images = embed_features(model, "image", feats.views[rows, 0])
    titles = embed_features(model, "text", feats.titles[rows])
    texts = embed_features(model, "text", feats.texts[rows])
    return {"text→image": retrieval_metrics(titles @ images.T, relevant),
            "image→text": retrieval_metrics(images @ texts.T, relevant)}


def adapt_heads(model: LiteCLIP, feats: CatalogFeatures, train: list[int], val: list[int], recipe: Recipe
                ) -> tuple[list[dict], dict | None]:
    """Train `model`'s heads in place on the `train` rows (titles or full texts, every view), early-stopped on the
    `val` rows' titles; the heads are kept as they were unless an epoch beats them there. Then the heads are mixed
    with the starting ones (`mix_heads`, `recipe.keep_gain`). Returns the epochs' history and the mix (None: none)."""
    start = (heads_state(model), aux_state(model))
    history = fit(model, feats.views, feats.titles, feats.texts, feats.titles, feats.groups, train, val, recipe)
    mix = mix_heads(model, feats, val, start, recipe.keep_gain) if recipe.keep_gain < 1.0 and val else None
    return history, mix


def validation_score(model: LiteCLIP, feats: CatalogFeatures, val: list[int]) -> float:
    """Text → image plus image → text MRR@10 among the validation products."""
    return sum(m["mrr@10"] for m in heldout_metrics(model, feats, val).values())


def least_share(scores: dict[float, float], keep_gain: float) -> float:
    """The least share a on MIX_GRID whose score keeps `keep_gain` of the best gain over `scores[0.0]` (the
    starting heads' score)."""
    gain = max(scores.values()) - scores[0.0]
    return next(a for a in MIX_GRID if scores[a] - scores[0.0] >= keep_gain * gain)


def mix_heads(model: LiteCLIP, feats: CatalogFeatures, val: list[int], start: tuple[dict, dict | None],
              keep_gain: float) -> dict:
    """Leave in `model` the heads (1 - a) * start + a * trained for the least a on MIX_GRID whose validation score
    keeps `keep_gain` of the best gain on the grid over the starting heads (`least_share`). On IKEA (bench/RESULTS.md "adapt") the
    trained heads forget much of Myntra (held-out MRR@10 0.616 -> 0.381); a = 0.75 keeps 0.481 for a held-out
    Recall@10 of 0.781 against 0.813. Returns {"mix": a, "validation": {a: score}}."""
    trained = (heads_state(model), aux_state(model))

    def at(a: float) -> tuple[dict, dict | None]:
        def blend(s0: dict, s1: dict) -> dict:
            return {k: (1.0 - a) * s0[k] + a * s1[k] for k in s1}
        return blend(start[0], trained[0]), blend(start[1], trained[1]) if trained[1] is not None else None

    scores: dict[float, float] = {}
    for a in (0.0, *MIX_GRID):
        load_heads(model, at(a))
        scores[a] = validation_score(model, feats, val)
    chosen = least_share(scores, keep_gain)
    load_heads(model, at(chosen))
    log.info("serving %.2f of the trained heads (validation %s)", chosen, {a: round(v, 3) for a, v in scores.items()})
    return {"mix": chosen, "validation": {str(a): round(v, 4) for a, v in scores.items()}}
