"""`shoplens adapt`: learn this home's catalog. Under the home's run lock: split the active products (held-out
fraction and `--exclude` ids are never trained on), adapt the installed heads to the rest
(indexer/model/training/adapt.py), score both models on the held-out products, write the adapted model's folder
(indexer/model/adapted.py), embed the catalog with it and publish a new index version.

Why a killed run changes nothing a search reads: the model folder is written whole and renamed, the new vectors
are stored under the new model's name (the published version reads other rows), and only the final atomic publish
switches search, and with it the home's model, to the adapted one. `--reset` publishes the installed model's
vectors again (re-embedding whatever was dropped), and `shoplens index --rollback` goes back one version.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from sqlalchemy import select

from indexer.cleanup import drop_stale_embeddings
from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import BadInput
from indexer.locking import run_lock
from indexer.model.adapted import (HEADS_FILE, MODEL_FILE, MODELS_DIR, TRAINED_ON_FILE, folder_of, published_model,
                                   spec_of)
from indexer.publish import multilingual_encoder, publish_from_store
from indexer.reembed import reembed, stored_image, stored_row
from indexer.store import Product, Store, open_store

log = logging.getLogger(__name__)

MIN_TRAIN_PRODUCTS = 40  # fewer trainable products than this teach the heads nothing that holds up
N_VIEWS = 2  # wild views per catalogue image


@dataclass(frozen=True)
class AdaptOptions:
    """What `shoplens adapt` was asked to do."""

    holdout: float = 0.1
    exclude: frozenset[str] = frozenset()
    seed: int = 0
    progress: bool = True


@dataclass
class AdaptResult:
    """The summary `shoplens adapt --json` prints (interfaces.md: model, trained_on, held_out, before, after)."""

    model: str
    trained_on: int
    held_out: int
    before: dict
    after: dict
    version: str | None = None
    seconds: float = 0.0
    validation: int = 0
    recipe: dict = field(default_factory=dict)
    mix: float | None = None  # the share of the trained heads served (`mix_heads`); None: the trained heads


def adapt_recipe(seed: int):
    """The recipe adaptation trains with. The L2-SP weight was chosen on IKEA's validation split (text→image +
    image→text MRR@10 of 1e-3 / 1e-2 / 1e-1 / 1: 1.240 / 1.250 / 1.068 / 0.478), which also forgets less of
    Myntra than 1e-3 (held-out MRR@10 0.381 against 0.330; installed heads 0.616; bench/RESULTS.md "adapt").
    keep_gain 0.9 (serve the least mix of trained heads keeping 90% of the validation gain) was chosen looking at
    IKEA validation and the Myntra forgetting curve: a = 0.75 there, Myntra 0.481."""
    from indexer.model.training.recipe import Recipe

    return Recipe(text="mixed", batch_size=256, lr=1e-3, max_epochs=30, patience=5, feature_dropout=0.1,
                  anchor=1e-2, view_weight=0.5, keep_gain=0.9, seed=seed, holdout=0.0, val=0.1)


def split_products(ids: list[str], *, holdout: float, exclude: frozenset[str], val: float, seed: int
                   ) -> tuple[list[int], list[int], list[int]]:
    """Row indices (train, validation, held out). Held out: every excluded id plus `holdout` of the others, drawn by
    a seeded shuffle of the sorted ids, so the split depends only on the ids and the seed."""
    rng = random.Random(seed)
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    rest = [i for i in order if ids[i] not in exclude]
    rng.shuffle(rest)
    n_held = round(holdout * len(rest))
    held = sorted([i for i in order if ids[i] in exclude] + rest[:n_held])
    pool = rest[n_held:]
    n_val = max(1, round(val * len(pool)))
    return sorted(pool[n_val:]), sorted(pool[:n_val]), held


def catalog_items(store: Store, max_pixels: int, max_bytes: int) -> list:
    """The active products with an image, by id, as adaptation's `CatalogItem`s (images read when needed)."""
    from indexer.images import ImageResolver
    from indexer.model.training.adapt import CatalogItem

    resolver = ImageResolver([], max_bytes=max_bytes)
    with store.session() as s:
        products = list(s.scalars(select(Product).where(Product.status == "active", Product.image_hash.is_not(None))
                                  .order_by(Product.id)))
    return [CatalogItem(p.id, p.title, stored_row(p).text(), p.image_hash,
                        partial(stored_image, resolver, p, max_pixels)) for p in products]


def _write_model_folder(models_dir: Path, base: str, checkpoint: dict, info: dict, card: str,
                        trained_ids: list[str]) -> Path:
    """Write the adapted model's folder whole under a staging name and rename it; returns the folder."""
    import torch

    models_dir.mkdir(parents=True, exist_ok=True)
    for stale in models_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = models_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    torch.save(checkpoint, staging / HEADS_FILE)
    digest = hashlib.sha256((staging / HEADS_FILE).read_bytes()).hexdigest()[:8]
    (staging / MODEL_FILE).write_text(json.dumps({"base": base, "heads": HEADS_FILE, **info}, indent=1))
    (staging / TRAINED_ON_FILE).write_text("".join(f"{pid}\n" for pid in trained_ids))
    (staging / "MODEL_CARD.md").write_text(card)
    folder = models_dir / f"{base}-adapted-{digest}"
    if folder.exists():  # the same heads again (a rerun with the same data and seed): keep the existing folder
        shutil.rmtree(staging)
        return folder
    os.rename(staging, folder)
    return folder


def run_adapt(settings: Settings, options: AdaptOptions) -> AdaptResult:
    """Adapt the installed model to the home's catalog and publish it; see the module docstring."""
    import torch

    from indexer.model.encoder import load_encoder
    from indexer.model.lite import build_lite
    from indexer.model.training.adapt import adapt_heads, catalog_features, heldout_metrics
    from indexer.model.training.model_card import render_adapt_card
    from indexer.model.training.train import aux_state, heads_state

    started = time.monotonic()
    if not 0.0 <= options.holdout < 1.0:
        raise BadInput(f"--holdout must lie in [0, 1), not {options.holdout}")
    with run_lock(settings.home):
        store = open_store(settings.db_url, migrate=True)
        published = published_model(settings)
        if published is None:
            raise BadInput("this home has no published index to adapt", hint="Run `shoplens index CATALOG` first.")
        base = DEFAULT_MODEL
        if folder_of(published) is None and published.split("@", 1)[0] != base:
            raise BadInput(f"this home's index uses {published}; `shoplens adapt` adapts {base}'s heads",
                           hint=f"Index with the default model ({base}) to adapt it.")
        items = catalog_items(store, settings.max_image_pixels, settings.max_image_bytes)
        recipe = adapt_recipe(options.seed)
        train, val, held = split_products([i.id for i in items], holdout=options.holdout, exclude=options.exclude,
                                          val=recipe.val, seed=options.seed)
        if len(train) + len(val) < MIN_TRAIN_PRODUCTS:
            raise BadInput(f"the catalog has {len(train) + len(val)} products to train on (after holding out "
                           f"{len(held)}); adaptation needs at least {MIN_TRAIN_PRODUCTS}: the current model is kept")
        torch.set_num_threads(max(1, min(settings.workers, os.cpu_count() or 1)))
        model, tokenizer, preprocess, base_name = build_lite(base, settings.model_cache_dir)
        installed = torch.load(Path(_installed_heads(base)), map_location="cpu", weights_only=True)
        feats = catalog_features(model, tokenizer, preprocess, items, settings.model_cache_dir, n_views=N_VIEWS,
                                 seed=options.seed)
        before = heldout_metrics(model, feats, held)
        log.info("adapting %s on %d products (%d for validation, %d held out)", base_name, len(train), len(val),
                 len(held))
        history, mix = adapt_heads(model, feats, train, val, recipe)
        after = heldout_metrics(model, feats, held)
        trained_ids = sorted(items[i].id for i in (*train, *val))
        checkpoint = {"state_dict": heads_state(model), "aux_head": aux_state(model),
                      "open_clip_overrides": installed.get("open_clip_overrides", {}), "recipe": asdict(recipe),
                      "model": base}
        info = {"adapted_from": base_name, "blend": asdict(model.blend), "n_views": N_VIEWS,
                "trained_on": len(trained_ids), "validation": len(val), "held_out": len(held), "seed": options.seed,
                "holdout": options.holdout, "excluded": len(options.exclude), "history": history, "mix": mix,
                "before": before, "after": after}
        card = render_adapt_card(base_name, info, recipe=asdict(recipe))
        folder = _write_model_folder(settings.home / MODELS_DIR, base, checkpoint, info, card, trained_ids)
        spec = spec_of(folder)
        encoder = load_encoder(spec, cache_dir=settings.model_cache_dir, runtime=settings.inference)
        reembed(store, encoder, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes,
                workers=settings.workers, progress=options.progress)
        name, _, _ = publish_from_store(store, settings.index_dir, encoder, settings.index_memory_budget_mb,
                                        multilingual=multilingual_encoder(settings))
        drop_stale_embeddings(store, settings.index_dir)
    return AdaptResult(spec, len(trained_ids), len(held), before, after, name, round(time.monotonic() - started, 1),
                       validation=len(val), recipe=asdict(recipe), mix=mix["mix"] if mix else None)


def reset_adaptation(settings: Settings, *, progress: bool = True) -> tuple[str, str]:
    """Publish the installed model's vectors again (embedding what is missing); returns (model, version)."""
    from indexer.model.encoder import load_encoder

    with run_lock(settings.home):
        store = open_store(settings.db_url, migrate=True)
        if published_model(settings) is None:
            raise BadInput("this home has no published index", hint="Run `shoplens index CATALOG` first.")
        encoder = load_encoder(settings.model_spec or DEFAULT_MODEL, cache_dir=settings.model_cache_dir,
                               runtime=settings.inference)
        reembed(store, encoder, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes,
                workers=settings.workers, progress=progress)
        name, _, _ = publish_from_store(store, settings.index_dir, encoder, settings.index_memory_budget_mb,
                                        multilingual=multilingual_encoder(settings))
        drop_stale_embeddings(store, settings.index_dir)
    return encoder.name, name


def _installed_heads(base: str) -> str:
    from indexer.model.registry import load_model_config

    return load_model_config(base)["heads"]


def summary_json(result: AdaptResult) -> str:
    """The `--json` output."""
    return json.dumps(asdict(result), default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))
