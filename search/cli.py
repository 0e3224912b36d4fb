"""The search area's commands: `shoplens search`, `similar` (interfaces.md) and `eval`, added to the group by
`register`."""
from __future__ import annotations

import json
from pathlib import Path

import click
from PIL import Image

from indexer.config import SCENE_MODES, SEARCH_MODES, settings_of
from indexer.errors import BadInput
from indexer.images import decode_image
from search.engine import SearchEngine
from search.evaluation.cli import eval_command
from search.filters import Filters
from search.query import Query, SearchResult
from search.regions import Box


def _print(result: SearchResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    if not result.hits:
        click.echo("no results: try fewer or more general words, or drop a filter", err=True)
        return
    for rank, h in enumerate(result.hits, start=(result.page - 1) * result.k + 1):
        price = f"{h.product.price:,.0f}" if h.product.price is not None else "-"
        click.echo(f"{rank:>3}. {h.score:7.4f}  {h.product.id:<10} {price:>8}  {h.product.title}"
                   + (f"  (+{len(h.duplicates)} duplicates)" if h.duplicates else "")
                   + (f"  [region {h.region}: {_box(result.regions[h.region])}]" if h.region is not None else ""))
    click.echo(f"{result.total} matching, index {result.index_version}, {result.kind} query ({result.mode})", err=True)


def _box(box: Box) -> str:
    return f"x={box.x} y={box.y} w={box.w} h={box.h}"


@click.command("search")
@click.argument("text", required=False, default="")
@click.option("--image", "image_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A photo to search with (alone or with TEXT: 'like this photo, but in blue').")
@click.option("--k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many results.")
@click.option("--page", type=click.IntRange(1, 10000), default=1, show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
              help="brand, category (any level), gender, colour, price_min, price_max. Repeatable.")
@click.option("--not", "negative", default="", help="Words to steer away from (same as 'without ...' in TEXT).")
@click.option("--mode", type=click.Choice(SEARCH_MODES), default=None,
              help="How a text query is answered (default: hybrid).")
@click.option("--image-weight", type=click.FloatRange(0, 1), default=None,
              help="The photo's share against TEXT (default 0.6).")
@click.option("--scene", type=click.Choice(SCENE_MODES), default=None,
              help="A photo alone: search it region by region when it shows a room (auto, the default), always "
                   "(on) or never (off).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search_command(ctx: click.Context, text: str, image_path: Path | None, k: int, page: int,
                   filters: tuple[str, ...], negative: str, mode: str | None, image_weight: float | None,
                   scene: str | None, as_json: bool) -> None:
    """Search the catalog by TEXT, by a photo (--image), or both."""
    settings = settings_of(ctx)
    if len(text) > settings.max_query_chars:
        raise BadInput(f"the query is {len(text)} characters long; the limit is {settings.max_query_chars}")
    image = _read_photo(image_path, settings) if image_path is not None else None
    query = Query(text=text, image=image, negative=negative, filters=Filters.parse_cli(filters), k=k, page=page,
                  mode=mode, image_weight=image_weight, scene=scene)
    _print(SearchEngine(settings).search(query), as_json)


@click.command("similar")
@click.argument("product_id")
@click.option("--k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many results.")
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE", help="As for `shoplens search`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def similar_command(ctx: click.Context, product_id: str, k: int, filters: tuple[str, ...], as_json: bool) -> None:
    """Products that look like PRODUCT_ID."""
    _print(SearchEngine(settings_of(ctx)).similar(product_id, k=k, filters=Filters.parse_cli(filters)), as_json)


@click.command("ask")
@click.argument("product_id")
@click.argument("question")
@click.option("--image-only", is_flag=True, help="Hide the catalog's facts: answer from the photo (and its printed "
                                                 "text) alone, as VQA accuracy is measured.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: answer, source, confidence.")
@click.pass_context
def ask_command(ctx: click.Context, product_id: str, question: str, image_only: bool, as_json: bool) -> None:
    """Answer QUESTION about PRODUCT_ID from its facts, its photo or the text printed on it."""
    answer = SearchEngine(settings_of(ctx)).ask(product_id, question, image_only=image_only)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        click.echo(f"{answer.answer}  [{answer.source}, confidence {answer.confidence:.2f}]")


@click.command("caption")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: caption and the reads it was built from.")
@click.pass_context
def caption_command(ctx: click.Context, target: str, as_json: bool) -> None:
    """One sentence describing a photo: TARGET is an image file or a product id."""
    settings = settings_of(ctx)
    engine = SearchEngine(settings)
    path = Path(target)
    if path.is_file():
        caption = engine.caption_photo(_read_photo(path, settings))
    else:
        caption = engine.caption(target)
    click.echo(json.dumps(caption.to_dict(), ensure_ascii=False) if as_json else caption.caption)


def _read_photo(path: Path, settings) -> Image.Image:
    """A photo file decoded with the upload limits; BadInput names the file on any failure."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    image, _ = decode_image(data, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes,
                            what=str(path))
    return image


def register(cli: click.Group) -> None:
    """Add the search area's commands to the `shoplens` group."""
    for command in (search_command, similar_command, eval_command, ask_command, caption_command):
        cli.add_command(command)
