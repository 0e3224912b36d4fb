"""Retrieval quality of shoplens-lite, in and out of domain: `python -m indexer.model.training.quality` prints the table.

- Myntra (in domain): the held-out split of `shoplens train-model` (seed 0: 10% of the products with an
  `images_hr` image, never trained on). Query = a distinct title; relevant = every held-out product with that
  title; candidates = all held-out products (images for text→image, titles for image→text).
- Grocery (never trained on): 81 product titles against the 81 catalogue images (and back), and the 296
  in-store photos against the 81 catalogue images (photo→product, the one labelled product is relevant).

Tower features are cached, so a rerun or a sweep over blends (`--sweep`) takes seconds.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from indexer.config import load_settings
from indexer.model.training.features import embed_features, image_features, text_features
from indexer.model.lite import Blend, LiteCLIP, build_lite
from indexer.model.training.metrics import retrieval_metrics
from indexer.model.training.data import read_pairs, split

log = logging.getLogger(__name__)
SHARED = Path(__file__).resolve().parents[4] / "shared" / "datasets"


@dataclass
class Task:
    """Raw tower features of one retrieval task: queries, candidates, relevance."""

    name: str
    query_kind: str  # "text" or "image"
    cand_kind: str
    queries: np.ndarray
    candidates: np.ndarray
    relevant: np.ndarray


def myntra_tasks(model: LiteCLIP, tokenizer, preprocess, cache_dir: Path, datasets: Path) -> list[Task]:
    pairs = read_pairs(datasets / "myntra_fashion" / "products.csv", ["image_hr", "thumb_60x80:thumbs_60x80.zip"],
                       holdout_column="image_hr")
    test = [pairs[i] for i in split(pairs)[2]]
    img = image_features(model, preprocess, [p.image for p in test], cache_dir, desc="myntra held-out images")
    titles = sorted({p.title for p in test})
    txt = text_features(model, tokenizer, titles, cache_dir, desc="myntra held-out titles")
    relevant = np.array([[p.title == t for p in test] for t in titles])
    return [Task("myntra text→image", "text", "image", txt, img, relevant),
            Task("myntra image→text", "image", "text", img, txt, relevant.T)]


def grocery_tasks(model: LiteCLIP, tokenizer, preprocess, cache_dir: Path, datasets: Path) -> list[Task]:
    root = datasets / "grocery_store"
    with (root / "products.csv").open(encoding="utf-8") as f:
        products = list(csv.DictReader(f))
    with (root / "photo_queries.csv").open(encoding="utf-8") as f:
        photos = list(csv.DictReader(f))
    iconic = image_features(model, preprocess, [(root / p["iconic_image_path"], None) for p in products], cache_dir,
                            desc="grocery catalogue images")
    shots = image_features(model, preprocess, [(root / q["query_image_path"], None) for q in photos], cache_dir,
                           desc="grocery photos")
    titles = text_features(model, tokenizer, [p["title"] for p in products], cache_dir, desc="grocery titles")
    ids = [p["product_id"] for p in products]
    eye = np.eye(len(products), dtype=bool)
    photo_rel = np.array([[q["relevant_product_id"] == i for i in ids] for q in photos])
    return [Task("grocery title→image", "text", "image", titles, iconic, eye),
            Task("grocery image→title", "image", "text", iconic, titles, eye),
            Task("grocery photo→product image", "image", "image", shots, iconic, photo_rel),
            Task("grocery photo→product title", "image", "text", shots, titles, photo_rel)]


def score(model: LiteCLIP, tasks: list[Task]) -> dict[str, dict[str, float]]:
    return {t.name: retrieval_metrics(embed_features(model, t.query_kind, t.queries) @ embed_features(model, t.cand_kind, t.candidates).T,
                                      t.relevant) for t in tasks}


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| task | R@1 | R@5 | R@10 | MRR@10 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['mrr@10']:.3f} |"
              for name, m in results.items()]
    return "\n".join(lines)


@click.command()
@click.option("--heads", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Heads checkpoint (default: the committed indexer/model/weights/shoplens-lite.pt).")
@click.option("--blend", default=None, help="Block weights HEADS,CONSE,VISUAL (default: the model config's).")
@click.option("--sweep", is_flag=True, help="Also score a range of blends (heads alone ... ConSE alone).")
@click.option("--datasets", type=click.Path(exists=True, file_okay=False, path_type=Path), default=SHARED,
              show_default=True)
def main(heads: Path | None, blend: str | None, sweep: bool, datasets: Path) -> None:
    """Print the quality table of shoplens-lite (markdown)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache_dir = load_settings().cache_dir  # the cache `shoplens train-model` fills: features are shared
    weights = Blend(*map(float, blend.split(","))) if blend else None
    model, tokenizer, preprocess, name = build_lite("shoplens-lite", cache_dir, heads_path=heads, blend=weights)
    tasks = myntra_tasks(model, tokenizer, preprocess, cache_dir, datasets) + \
        grocery_tasks(model, tokenizer, preprocess, cache_dir, datasets)
    b = model.blend
    click.echo(f"## {name} (blend heads={b.heads:g}, conse={b.conse:g}, visual={b.visual:g})\n")
    click.echo(table(score(model, tasks)))
    if sweep:
        trained = model.blend.heads > 0
        for h, c, v in ((1, 0, 0), (0, 1, 0), (1, 0.5, 0), (1, 1, 0), (0.5, 1, 0), (1, 1, 0.5), (1, 1, 1), (1, 1, 1.5)):
            if h and not trained:
                continue
            model.blend = Blend(float(h), float(c), float(v))
            click.echo(f"\n### blend heads={h:g}, conse={c:g}, visual={v:g}\n")
            click.echo(table(score(model, tasks)))


if __name__ == "__main__":
    main()
