"""Locked-image tuning (LiT) of the shoplens-lite projection heads on a catalog.

Both towers stay frozen, so their features are computed once and cached (`indexer/model/training/features.py`); training then
takes seconds per epoch. The image head reads the pooled head features and the aux features (mid-level stages and
a colour histogram, `indexer/model/lite.py`). Loss: symmetric InfoNCE with a learnable temperature, where products with
an identical text count as positives of each other (catalogs repeat titles: "Puma Men Black T-shirt"). A validation
split reports Recall@K every epoch and stops training when it no longer improves; the held-out test split is never
trained on and is scored once at the end. Output: `shoplens-lite.pt` (heads only, composed with the packaged
towers by the loader) and `MODEL_CARD.md`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from indexer.model.training.features import image_features, text_features
from indexer.model.lite import LiteCLIP, build_lite
from indexer.model.training.metrics import retrieval_metrics
from indexer.model.training.model_card import write_model_card
from indexer.model.training.data import read_pairs, split, text_of
from indexer.model.training.recipe import HEADS_FILE, Recipe

log = logging.getLogger(__name__)


def _head_modules(model: LiteCLIP) -> list[torch.nn.Module]:
    return [m for m in (model.clip.visual.head, model.clip.text.proj, model.aux_head) if m is not None]


def _heads(model: LiteCLIP) -> list[torch.nn.Parameter]:
    return [p for m in _head_modules(model) for p in m.parameters()] + [model.clip.logit_scale]


def heads_state(model: LiteCLIP) -> dict[str, torch.Tensor]:
    """The trained part of the open_clip state dict (image head, text projection, temperature)."""
    return {k: v.detach().clone() for k, v in model.clip.state_dict().items()
            if k.startswith(("visual.head.", "text.proj.")) or k == "logit_scale"}


def aux_state(model: LiteCLIP) -> dict[str, torch.Tensor] | None:
    return {k: v.detach().clone() for k, v in model.aux_head.state_dict().items()} if model.aux_head else None


def load_heads(model: LiteCLIP, state: tuple[dict, dict | None]) -> None:
    """Put (heads_state, aux_state) into `model`."""
    model.clip.load_state_dict(state[0], strict=False)
    if state[1] is not None:
        model.aux_head.load_state_dict(state[1])


def _project(model: LiteCLIP, img: torch.Tensor, txt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (F.normalize(model.image_head(img), dim=-1), F.normalize(model.clip.text.proj(txt), dim=-1))


def evaluate_split(model: LiteCLIP, img: torch.Tensor, txt: torch.Tensor, groups: np.ndarray) -> dict[str, float]:
    """Text→image and image→text retrieval among the split's products; relevant = same text group."""
    with torch.no_grad():
        vi, vt = _project(model, img, txt)
        scores = (vt @ vi.T).numpy()
    relevant = groups[:, None] == groups[None, :]
    t2i = retrieval_metrics(scores, relevant)
    i2t = retrieval_metrics(scores.T, relevant.T)
    return {**{f"t2i_{k}": v for k, v in t2i.items()}, **{f"i2t_{k}": v for k, v in i2t.items()}}


def _groups(texts: list[str]) -> np.ndarray:
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(t.lower(), len(ids)) for t in texts])


def _contrastive(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair in the same group is a positive."""
    pos = (groups[:, None] == groups[None, :]).float()
    target = pos / pos.sum(1, keepdim=True)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.T.log_softmax(1)).sum(1).mean())


def fit(model: LiteCLIP, img: np.ndarray, txt: np.ndarray, alt_txt: np.ndarray | None, val_txt: np.ndarray,
        groups: np.ndarray, train_idx: list[int], val_idx: list[int], recipe: Recipe) -> list[dict]:
    """Train the heads in place; keeps the weights of the best validation epoch. Returns per-epoch history.

    `img`: (n, feature_dim) image features, or (n, 1 + views, feature_dim) with augmented views after the clean
    one: a step draws one view per product; validation uses the clean one.
    `alt_txt`: a second text per product, drawn instead of `txt` with probability 1/2 (text "mixed");
    `val_txt`: the validation queries (titles, as a shopper would type them)."""
    torch.manual_seed(recipe.seed)
    params = _heads(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    anchors = [p.detach().clone() for p in params] if recipe.anchor else None
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0 if anchors else recipe.weight_decay)
    views = img if img.ndim == 3 else img[:, None]
    ti, tt, tg = (torch.from_numpy(views[train_idx]), torch.from_numpy(txt[train_idx]),
                  torch.from_numpy(groups[train_idx]))
    ta = torch.from_numpy(alt_txt[train_idx]) if alt_txt is not None else None
    vi, vt, vg = torch.from_numpy(views[val_idx, 0]), torch.from_numpy(val_txt[val_idx]), groups[val_idx]
    steps_per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps_per_epoch * recipe.max_epochs,
                                                pct_start=0.1)
    best, best_state, history, bad = -1.0, (heads_state(model), aux_state(model)), [], 0
    if anchors:  # starting from trained heads: an epoch must beat them on validation to replace them
        start = evaluate_split(model, vi, vt, vg)
        best = start["t2i_mrr@10"] + start["i2t_mrr@10"]
        history.append({"epoch": 0, **start})
    for epoch in range(1, recipe.max_epochs + 1):
        perm = torch.randperm(len(train_idx))
        total = 0.0
        for m in _head_modules(model):
            m.train()
        for s in tqdm(range(0, len(perm), recipe.batch_size), desc=f"epoch {epoch}", unit="batch", leave=False):
            b = perm[s:s + recipe.batch_size]
            x_i = F.dropout(ti[b, torch.randint(ti.shape[1], (len(b),))], recipe.feature_dropout, training=True)
            x_t = tt[b] if ta is None else torch.where(torch.rand(len(b), 1) < 0.5, tt[b], ta[b])
            x_t = F.dropout(x_t, recipe.feature_dropout, training=True)
            e_i, e_t = _project(model, x_i, x_t)
            scale = model.clip.logit_scale.exp().clamp(max=100)
            loss = _contrastive(scale * e_t @ e_i.T, tg[b])
            if recipe.view_weight and ti.shape[1] > 1:
                e_clean = F.normalize(model.image_head(ti[b, 0]), dim=-1)
                e_view = F.normalize(model.image_head(ti[b, torch.randint(1, ti.shape[1], (len(b),))]), dim=-1)
                loss = loss + recipe.view_weight * _contrastive(scale * e_view @ e_clean.T, tg[b])
            if anchors:
                loss = loss + recipe.anchor * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        for m in _head_modules(model):
            m.eval()
        metrics = evaluate_split(model, vi, vt, vg)
        row = {"epoch": epoch, "loss": total / len(perm), "temperature": 1 / model.clip.logit_scale.exp().item(),
               **metrics}
        history.append(row)
        log.info("epoch %d loss %.4f val text→image R@1 %.3f R@10 %.3f MRR@10 %.3f", epoch, row["loss"],
                 metrics["t2i_recall@1"], metrics["t2i_recall@10"], metrics["t2i_mrr@10"])
        score = metrics["t2i_mrr@10"] + metrics["i2t_mrr@10"]
        if score > best:
            best, best_state, bad = score, (heads_state(model), aux_state(model)), 0
        else:
            bad += 1
            if bad >= recipe.patience:
                log.info("early stop after epoch %d (best val epoch %d)", epoch, epoch - bad)
                break
    load_heads(model, best_state)
    for p in params:
        p.requires_grad_(False)
    return history


def train_heads(catalog: Path, out: Path, cache_dir: Path, *, image_columns: list[str], images_root: Path | None,
                holdout_column: str | None, recipe: Recipe, model_name: str = "shoplens-lite") -> dict:
    """Cache features, fit the heads, score the held-out split, write checkpoint + model card. Returns the card data."""
    started = time.time()
    pairs = read_pairs(catalog, image_columns, images_root=images_root, holdout_column=holdout_column)
    train_idx, val_idx, test_idx = split(pairs, holdout=recipe.holdout, val=recipe.val, seed=recipe.seed)
    if recipe.max_train:
        train_idx = [i for i in train_idx if i < recipe.max_train]
        val_idx = [i for i in val_idx if i < recipe.max_train]
    used = sorted({*train_idx, *val_idx, *test_idx})
    log.info("%d products: %d train, %d validation, %d held out", len(pairs), len(train_idx), len(val_idx),
             len(test_idx))
    model, tokenizer, preprocess, _ = build_lite(model_name, cache_dir, use_heads=False,
                                                 head_overrides=recipe.overrides())
    if recipe.aux:
        model.aux_head = torch.nn.Linear(sum(model.aux_groups), recipe.embed_dim)
    img = np.zeros((len(pairs), model.feature_dim), np.float32)
    img[used] = image_features(model, preprocess, [pairs[i].image for i in used], cache_dir)

    def texts(mode: str) -> np.ndarray:
        out = np.zeros((len(pairs), 384), np.float32)
        out[used] = text_features(model, tokenizer, [text_of(pairs[i], mode) for i in used], cache_dir,
                                  desc=f"{mode} features")
        return out

    titles = texts("title")
    txt, alt = (titles, texts("title+attributes")) if recipe.text == "mixed" else (texts(recipe.text), None)
    groups = _groups([p.title for p in pairs])
    history = fit(model, img, txt, alt, titles, groups, train_idx, val_idx, recipe)
    test = evaluate_split(model, torch.from_numpy(img[test_idx]), torch.from_numpy(titles[test_idx]), groups[test_idx])
    log.info("held-out (%d products, query = title): text→image R@10 %.3f MRR@10 %.3f", len(test_idx),
             test["t2i_recall@10"], test["t2i_mrr@10"])
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = {"state_dict": heads_state(model), "open_clip_overrides": recipe.overrides(),
                  "recipe": asdict(recipe), "model": model_name}
    if model.aux_head is not None:
        checkpoint["aux_head"] = aux_state(model)
    tmp = out / f".{HEADS_FILE}.tmp{os.getpid()}"
    torch.save(checkpoint, tmp)
    os.replace(tmp, out / HEADS_FILE)
    card = {"catalog": str(catalog), "image_columns": image_columns, "holdout_column": holdout_column,
            "n_products": len(pairs), "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
            "recipe": asdict(recipe), "history": history, "test": test,
            "minutes": round((time.time() - started) / 60, 1)}
    (out / "training.json").write_text(json.dumps(card, indent=1))
    write_model_card(out / "MODEL_CARD.md", card)
    return card
