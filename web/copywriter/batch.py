"""`shoplens generate`: grounded copy for one product or a selection, batched, resumable.

Every product's version is committed as soon as its batch is done and carries the batch's run key in its
params, so rerunning the same command after a kill skips what is already written. Products that already have
approved copy are skipped (unless --include-approved); a single `--product` is always generated.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import click
from sqlalchemy import select
from tqdm import tqdm

from indexer.config import settings_of
from indexer.errors import BadInput
from indexer.store import CopyVersion, Product, Store
from web.copywriter.facts import DEFAULT_VISUAL_THRESHOLD
from web.copywriter.prompt import LENGTHS, TONES, CopyOptions
from web.copywriter.versions import approved_product_ids, version_json

log = logging.getLogger(__name__)


FILTER_FIELDS = {"brand": Product.brand, "gender": Product.gender, "colour": Product.colour,
                 "category": Product.category}


def parse_filters(items: tuple[str, ...]) -> dict[str, str]:
    """`["brand=Nike", "category=Apparel > Topwear"]` → field → value (category matches as a path prefix)."""
    filters = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in FILTER_FIELDS or not value.strip():
            raise BadInput(f"bad --filter {item!r}", hint=f"Use FIELD=VALUE with FIELD one of {', '.join(FILTER_FIELDS)}.")
        filters[name.strip()] = value.strip()
    return filters


def select_products(store: Store, *, ids: list[str], filters: dict[str, str], limit: int | None) -> list[str]:
    """Active product ids in the selection, in a stable order (ids as given, else by catalog key)."""
    with store.session() as s:
        if ids:
            active = set(s.scalars(select(Product.id).where(Product.id.in_(ids), Product.status == "active")))
            missing = [i for i in ids if i not in active]
            if missing:
                raise BadInput(f"{len(missing)} product id(s) not found: {', '.join(missing[:5])}",
                               hint="Check the ids (shoplens search) or drop them from the list.")
            chosen = list(dict.fromkeys(ids))
        else:
            query = select(Product.id).where(Product.status == "active").order_by(Product.key)
            for name, value in filters.items():
                column = FILTER_FIELDS[name]
                query = query.where(column.like(f"{value}%") if name == "category" else column == value)
            chosen = list(s.scalars(query))
    return chosen[:limit] if limit else chosen


def run_key(ids: list[str], options: CopyOptions, llm_spec: str) -> str:
    """Same selection + same options = same run, so a rerun resumes instead of starting over."""
    payload = json.dumps([ids, asdict(options), llm_spec], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def done_in_run(store: Store, ids: list[str], key: str) -> set[str]:
    with store.session() as s:
        rows = s.execute(select(CopyVersion.product_id, CopyVersion.params).where(CopyVersion.product_id.in_(ids)))
        return {pid for pid, params in rows if (params or {}).get("batch_run") == key}


def _read_ids(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read ids file {path}: {exc}") from exc


def cli_json(draft, version) -> dict:
    """The interface's `--json` shape, plus the version's details."""
    return {"product_id": draft.product_id, "text": draft.text,
            "unsupported_claims": [c.to_json() for c in draft.unsupported_claims], "model": draft.model,
            "version": version.version, "seo_title": draft.seo_title, "bullets": draft.bullets,
            "flagged": [c.to_json() for c in draft.flagged], "params": version_json(version)["params"]}


@click.command("generate")
@click.option("--product", "products", multiple=True, metavar="ID", help="Product id (repeatable).")
@click.option("--ids-file", type=click.Path(dir_okay=False, path_type=Path), help="File with one product id a line.")
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
              help="Select by brand, gender, colour or category (path prefix). Repeatable.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many products.")
@click.option("--length", type=click.Choice(list(LENGTHS)), default="medium", show_default=True)
@click.option("--tone", type=click.Choice(list(TONES)), default="friendly", show_default=True)
@click.option("--bullets", is_flag=True, help="Also write up to 3 checked bullet points.")
@click.option("--retries", type=click.IntRange(0, 5), default=1, show_default=True,
              help="Regenerations of a description with unsupported claims before they are removed.")
@click.option("--style-examples", type=click.IntRange(0, 3), default=2, show_default=True,
              help="The catalog's descriptions of similar products shown to the model as style (0: none).")
@click.option("--temperature", type=click.FloatRange(0, 2), default=CopyOptions.temperature, show_default=True,
              help="Sampling temperature (0: greedy). Each product samples from its own seed, whatever the batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Another seed writes other texts.")
@click.option("--batch-size", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--llm", "llm_spec", default=None, help="Language model spec (default $SHOPLENS_LLM or smollm2-135m).")
@click.option("--no-vision", is_flag=True, help="Don't read visual attributes from the product image.")
@click.option("--visual-threshold", type=click.FloatRange(0, 1), default=DEFAULT_VISUAL_THRESHOLD, show_default=True,
              help="Confidence a visual attribute needs to be used.")
@click.option("--include-approved", is_flag=True, help="Also regenerate products that have approved copy.")
@click.option("--author", default="shoplens-cli", show_default=True, help="Stored with every version.")
@click.option("--json", "as_json", is_flag=True, help="JSON (one object a line for several products).")
@click.option("--no-progress", is_flag=True)
@click.pass_context
def generate_command(ctx: click.Context, products: tuple[str, ...], ids_file: Path | None, filters: tuple[str, ...],
                     limit: int | None, length: str, tone: str, bullets: bool, retries: int, style_examples: int,
                     temperature: float, seed: int, batch_size: int,
                     llm_spec: str | None, no_vision: bool, visual_threshold: float, include_approved: bool, author: str, as_json: bool,
                     no_progress: bool) -> None:
    """Write grounded product copy with the language model and store it as draft versions."""
    from web.copywriter.service import CopyService  # the language model's libraries: loaded only to generate

    settings = settings_of(ctx)
    ids = list(products) + (_read_ids(ids_file) if ids_file else [])
    parsed = parse_filters(filters)
    if not ids and not parsed and not limit:
        raise click.UsageError("say which products: --product ID, --ids-file FILE, --filter FIELD=VALUE or --limit N")
    options = CopyOptions(length=length, tone=tone, bullets=bullets, retries=retries, style_examples=style_examples,
                          temperature=temperature, seed=seed)
    service = CopyService(settings, llm_spec=llm_spec, vision=not no_vision, visual_threshold=visual_threshold)
    chosen = select_products(service.store, ids=ids, filters=parsed, limit=limit)
    single = len(products) == 1 and not ids_file and not parsed
    key = run_key(chosen, options, service.llm_spec)
    todo = chosen
    if not single:
        with service.store.session() as s:
            approved = set() if include_approved else approved_product_ids(s)
        done = done_in_run(service.store, chosen, key)
        todo = [pid for pid in chosen if pid not in approved and pid not in done]
        log.info("run %s: %d selected, %d with approved copy skipped, %d already done in this run, %d to write",
                 key, len(chosen), len(approved & set(chosen)), len(done), len(todo))
    bar = tqdm(total=len(todo), unit="product", disable=no_progress or single, desc="generate")
    flagged = 0
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        for draft, version in service.generate(batch, options, author=author, extra_params={"batch_run": key}):
            flagged += bool(draft.flagged)
            if as_json:
                click.echo(json.dumps(cli_json(draft, version), ensure_ascii=False))
            else:
                click.echo(f"{draft.product_id}\tv{version.version}\t{draft.text}")
        bar.update(len(batch))
    bar.close()
    if not single:
        click.echo(f"run {key}: wrote {len(todo)} drafts ({flagged} had claims flagged and fixed); "
                   f"{len(chosen) - len(todo)} skipped", err=True)
