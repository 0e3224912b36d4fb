"""`shoplens train-model`: the command, registered by the indexer area; training itself is in `train.py`."""
from __future__ import annotations

import os
from pathlib import Path

import click

from indexer.config import settings_of
from indexer.model.training.recipe import HEADS_FILE, Recipe


@click.command("train-model")
@click.option("--catalog", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or JSON Lines catalog with id, title and an image column.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for shoplens-lite.pt, MODEL_CARD.md and training.json (indexer/model/weights to publish).")
@click.option("--image-col", "image_columns", multiple=True,
              help="Image column, COLUMN or COLUMN:ARCHIVE.zip (its values are archive members); repeat for "
                   "fallbacks, the first non-empty wins. Default: image_hr, then thumb_60x80:thumbs_60x80.zip "
                   "when the catalog has them, else image.")
@click.option("--images-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder image paths are relative to (default: the catalog's folder).")
@click.option("--holdout-col", "holdout_column", default=None,
              help="Draw the held-out split only from rows with this column non-empty (default image_hr if present).")
@click.option("--text", type=click.Choice(["title", "title+attributes", "mixed"]), default=Recipe.text,
              show_default=True, help="Training text; mixed: title or title+attributes, a coin flip per product.")
@click.option("--aux/--no-aux", default=Recipe.aux, show_default=True,
              help="Let the image head read the aux features (mid-level stages, colour histogram).")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default=Recipe.head, show_default=True)
@click.option("--epochs", "max_epochs", type=click.IntRange(1, 500), default=Recipe.max_epochs, show_default=True)
@click.option("--seed", type=int, default=Recipe.seed, show_default=True)
@click.option("--max-train", type=click.IntRange(100), default=None,
              help="Train and validate only on the first N catalog rows (quick runs); the held-out split is unchanged.")
@click.pass_context
def train_model_command(ctx: click.Context, catalog: Path, out: Path, image_columns: tuple[str, ...],
                        images_root: Path | None, holdout_column: str | None, text: str, aux: bool, head: str,
                        max_epochs: int, seed: int, max_train: int | None) -> None:
    """Train the shoplens-lite projection heads on a catalog (locked-image tuning; towers frozen).

    Example: shoplens train-model --catalog ../shared/datasets/myntra_fashion/products.csv --out indexer/model/weights
    """
    settings = settings_of(ctx)
    header = catalog.open(encoding="utf-8").readline()
    if not image_columns:
        image_columns = ("image_hr", "thumb_60x80:thumbs_60x80.zip") if "image_hr" in header else ("image",)
    if holdout_column is None and "image_hr" in header:
        holdout_column = "image_hr"
    import torch  # the training stack loads only when a model is trained, not for every `shoplens` command

    from indexer.model.training.train import train_heads

    torch.set_num_threads(max(1, min(settings.workers, os.cpu_count() or 1)))
    recipe = Recipe(text=text, aux=aux, head=head, max_epochs=max_epochs, seed=seed, max_train=max_train)
    card = train_heads(catalog, out, settings.cache_dir, image_columns=list(image_columns), images_root=images_root,
                       holdout_column=holdout_column, recipe=recipe)
    click.echo(f"wrote {out / HEADS_FILE} and {out / 'MODEL_CARD.md'}: held-out text→image "
               f"R@10 {card['test']['t2i_recall@10']:.3f}, MRR@10 {card['test']['t2i_mrr@10']:.3f}")
