"""The measures beside retrieval: zero-shot category accuracy, encoder FLOPs per query, and copy generation.

Zero-shot accuracy asks the encoder which category name (as a text prompt) best matches each product image,
which shows whether the shared space carries category meaning beyond the catalog it was trained on. FLOPs are
counted by torch's flop counter on one query through each tower. Generation metrics belong to the copywriter
(web/copywriter), which `search` must not import: it registers a provider with `register_generation_metrics`.
"""
from __future__ import annotations

import importlib
import logging
import random
from collections import Counter
from typing import Callable

import numpy as np
from PIL import Image

from indexer.config import Settings
from indexer.errors import ShopLensError
from indexer.store import Store

log = logging.getLogger(__name__)

PROMPT = "a photo of {}"
FLOPS_TEXT = "black casual shoes for men"

GenerationMetrics = Callable[[Store], dict]  # e.g. web.copywriter.quality.copy_quality
_generation_provider: GenerationMetrics | str | None = None


def register_generation_metrics(provider: GenerationMetrics | str) -> None:
    """Let the copywriter supply generation metrics (BLEU, grounding rate, ...) to eval reports.

    `provider` is a callable taking the store, or "module:function" imported only when an eval asks for it (so
    registering costs the CLI nothing at start-up).
    """
    global _generation_provider
    _generation_provider = provider


def _resolve(provider: GenerationMetrics | str) -> GenerationMetrics:
    if callable(provider):
        return provider
    module, _, name = provider.partition(":")
    return getattr(importlib.import_module(module), name)


def generation_metrics(store: Store) -> dict:
    """The copywriter's metrics over the stored copy, or a note saying why there are none."""
    if _generation_provider is None:
        return {"available": False, "reason": "no generation metrics provider registered (web/copywriter)"}
    try:
        numbers = _resolve(_generation_provider)(store)
    except ShopLensError as exc:
        return {"available": False, "reason": str(exc)}
    if not numbers.get("n_products", 1):
        return {"available": False, "reason": "no generated copy in this database yet (`shoplens generate`)"}
    return {"available": True, **numbers}


def category_label(category: str | None, level: int) -> str | None:
    """One level of a category path ('Apparel > Topwear > Tshirts', level -1 -> 'Tshirts')."""
    parts = [p.strip() for p in (category or "").split(">") if p.strip()]
    try:
        return parts[level]
    except IndexError:
        return None


def zero_shot_accuracy(encoder, images: list[Image.Image], labels: list[str], classes: list[str],
                       prompt: str = PROMPT) -> dict:
    """Top-1 / top-5 accuracy of image → class-name prompt, with chance and majority rates for scale."""
    text = encoder.encode_texts([prompt.format(c.lower()) for c in classes])
    img = encoder.encode_images(images)
    order = np.argsort(-(img @ text.T), axis=1)
    truth = np.array([classes.index(label) for label in labels])
    top1 = float(np.mean(order[:, 0] == truth))
    top5 = float(np.mean([t in row[:5] for t, row in zip(truth, order)]))
    majority = Counter(labels).most_common(1)[0][1] / len(labels)
    return {"n_images": len(images), "n_classes": len(classes), "top1": top1, "top5": top5,
            "chance_top1": 1.0 / len(classes), "majority_top1": majority, "prompt": prompt}


def zero_shot_from_store(settings: Settings, store, encoder, *, n: int = 300, seed: int = 0,
                         level: int = -1) -> dict:
    """Zero-shot category accuracy on `n` indexed products with an image (categories at `level` of the path)."""
    from sqlalchemy import select

    from indexer.images import ImageResolver, decode_image
    from indexer.store import Product

    with store.session() as s:
        rows = s.execute(select(Product.id, Product.category, Product.image_ref)
                         .where(Product.status == "active")).all()
    labelled = sorted((pid, category_label(cat, level), ref) for pid, cat, ref in rows if ref)
    labelled = [r for r in labelled if r[1]]
    if not labelled:
        return {"available": False, "reason": "no indexed product has both a category and an image"}
    classes = sorted({label for _, label, _ in labelled})
    if len(classes) < 2:
        return {"available": False, "reason": f"only one category at level {level}"}
    sample = random.Random(seed).sample(labelled, min(n, len(labelled)))
    resolver = ImageResolver([settings.home], max_bytes=settings.max_image_bytes)
    images, labels = [], []
    for _pid, label, ref in sample:
        try:
            data, _ = resolver.read(ref)
            images.append(decode_image(data, max_pixels=settings.max_image_pixels)[0])
            labels.append(label)
        except ShopLensError as exc:
            log.warning("zero-shot: skipping %s: %s", ref, exc)
    if not images:
        return {"available": False, "reason": "no product image could be read"}
    return {"available": True, "level": level, **zero_shot_accuracy(encoder, images, labels, classes)}


def flops_per_query(encoder, image: Image.Image | None = None, text: str = FLOPS_TEXT) -> dict:
    """FLOPs of one query through each tower (image: preprocess excluded; text: tokenising excluded), counted on
    the model itself: the cost of the model, whichever runtime (eager or ONNX) serves it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    image = image or Image.new("RGB", (224, 224), (128, 128, 128))
    tensor = encoder.preprocess(image).unsqueeze(0)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as image_counter:
            encoder.model.encode_image(tensor)
        with FlopCounterMode(display=False) as text_counter:
            encoder.model.encode_text(encoder.tokenizer([text]))
    return {"model": encoder.name, "image_gflops": image_counter.get_total_flops() / 1e9,
            "text_gflops": text_counter.get_total_flops() / 1e9, "text": text}
