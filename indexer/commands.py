"""The indexer's commands: `shoplens index`, `status`, `migrate` and `train-model`, added to the group by `register`.

The settings come from the root group's context object (`settings_of`), so this module needs nothing from web/.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click
from sqlalchemy import func, select

from indexer.config import READ_TEXT_MODES, Settings, settings_of
from indexer.errors import BadInput
from indexer.model.training.cli import train_model_command
from indexer.store import IngestRun, Product, RowOutcome, open_store, upgrade
from indexer.vectors import current_version, read_manifest

log = logging.getLogger(__name__)

EXIT_ROWS_REJECTED = 3


def _rollback(settings: Settings) -> None:
    from indexer.publish import record_version
    from indexer.vectors import rollback

    old, new = rollback(settings.index_dir)
    with open_store(settings.db_url).session() as s:
        record_version(s, read_manifest(settings.index_dir, new))
    click.echo(f"rolled back from {old} to {new}")


def _print_errors(settings: Settings, run_id: int | None) -> None:
    with open_store(settings.db_url).session() as s:
        run_id = run_id or s.scalar(select(func.max(IngestRun.id)))
        if run_id is None:
            raise BadInput("no index run yet", hint="Run `shoplens index CATALOG` first.")
        run = s.get(IngestRun, run_id)
        if run is None:
            raise BadInput(f"no index run {run_id}")
        rows = s.execute(select(RowOutcome.row_number, RowOutcome.product_id, RowOutcome.reason)
                         .where(RowOutcome.run_id == run_id, RowOutcome.outcome == "rejected")
                         .order_by(RowOutcome.row_number)).all()
    click.echo(f"run {run_id} ({run.catalog}, {run.status}): {len(rows)} rejected rows", err=True)
    for row_number, product_id, reason in rows:
        click.echo(f"row {row_number}\tid {product_id or '-'}\t{reason}")


@click.command("index")
@click.argument("catalog", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images-root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder that relative image paths are relative to (default: the catalog's folder).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD from another column; `a,b` = first non-empty, `a>b>c` = category path, "
                   "`x.zip#{col}` = template. Repeatable.")
@click.option("--model", "model_spec", default=None, help="Encoder spec (default $SHOPLENS_MODEL or shoplens-lite).")
@click.option("--prune", is_flag=True, help="Delete products that are no longer in the catalog.")
@click.option("--rollback", "do_rollback", is_flag=True, help="Switch back to the previous index version.")
@click.option("--errors", "show_errors", is_flag=True, help="List the rejected rows of the last run (or --run).")
@click.option("--run", "run_id", type=int, default=None, help="With --errors: which run.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None, help="Products per encoder batch.")
@click.option("--workers", type=click.IntRange(0, 64), default=None, help="Image decoding threads.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
@click.option("--read-text", type=click.Choice(READ_TEXT_MODES), default=None,
              help="Read the words printed on product images: on, off, or auto (read when a sample of the "
                   "catalog's images carries text; the default, or $SHOPLENS_READ_TEXT).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Decode and encode on a Ray cluster: local (start one here), auto, ray://HOST:PORT or "
                   "HOST:PORT; actors from $SHOPLENS_RAY_ACTORS (default one per CPU).")
@click.pass_context
def index_command(ctx: click.Context, catalog: Path | None, images_root: Path | None, mapping: tuple[str, ...],
                  model_spec: str | None, prune: bool, do_rollback: bool, show_errors: bool, run_id: int | None,
                  batch_size: int | None, workers: int | None, no_progress: bool, read_text: str | None,
                  ray_address: str | None) -> None:
    """Index CATALOG (CSV or JSON Lines) into the database and publish a new index version.

    Exit status: 0 done, 1 failed, 3 done but some rows were rejected (see `shoplens index --errors`).
    """
    settings = settings_of(ctx).with_overrides(batch_size=batch_size, workers=workers, read_text=read_text)
    if do_rollback:
        return _rollback(settings)
    if show_errors:
        return _print_errors(settings, run_id)
    if catalog is None:
        raise click.UsageError("missing CATALOG (or use --rollback / --errors)")
    from indexer.pipeline import IndexOptions, run_index

    options = IndexOptions(catalog=catalog, images_root=images_root.resolve() if images_root else None,
                           mapping=mapping, model_spec=model_spec, prune=prune,
                           progress=not no_progress, ray=ray_address)
    summary = run_index(settings, options)
    click.echo(summary.line())
    if summary.rejected:
        click.echo(f"{summary.rejected} rows rejected: see `shoplens index --errors`", err=True)
        ctx.exit(EXIT_ROWS_REJECTED)


def index_status(settings: Settings) -> dict:
    """`{"products": N, "index": {"version", "vectors", "type", ...}}`; index is null before the first publish."""
    with open_store(settings.db_url).session() as s:
        products = s.scalar(select(func.count()).select_from(Product).where(Product.status == "active"))
    name = current_version(settings.index_dir)
    index = None
    if name:
        m = read_manifest(settings.index_dir, name)
        index = {"version": name, "vectors": m["count"], "type": m["kinds"]["fused"]["type"], "model": m["model"],
                 "dim": m["dim"], "recall_at_10_vs_exact": {k: v["recall_at_10_vs_exact"]
                                                            for k, v in m["kinds"].items()},
                 "score_floors": m.get("score_floors"), "previous": m.get("previous")}
    return {"products": products, "index": index}


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Products in the database and the published index version."""
    status = index_status(settings_of(ctx))
    if as_json:
        click.echo(json.dumps(status))
        return
    click.echo(f"products: {status['products']}")
    idx = status["index"]
    click.echo("index: none published yet" if idx is None else
               f"index: {idx['version']} ({idx['vectors']} vectors, {idx['type']}, model {idx['model']})")


@click.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    upgrade(settings_of(ctx).db_url)
    click.echo("database is at the head revision")


def _read_ids(path: Path) -> frozenset[str]:
    try:
        return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the ids file {path}: {exc}", hint="One product id a line, UTF-8.") from None


@click.command("adapt")
@click.option("--holdout", type=float, default=0.1, show_default=True,
              help="Fraction of the products never trained on (seeded); the before/after metrics use them.")
@click.option("--exclude", "exclude_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File of product ids (one a line) never to train on; they join the held-out products.")
@click.option("--reset", is_flag=True, help="Go back to the installed model (re-embed and publish).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs only).")
@click.pass_context
def adapt_command(ctx: click.Context, holdout: float, exclude_file: Path | None, reset: bool, as_json: bool,
                  no_progress: bool) -> None:
    """Adapt the model to this home's catalog, re-embed it and publish a new index version.

    The installed projection heads are trained further on the catalog's own products (towers frozen); held-out
    products are never trained on and score the model before and after. `shoplens index --rollback` goes back
    one version; `--reset` returns to the installed model.
    """
    from indexer.adaptation import AdaptOptions, reset_adaptation, run_adapt, summary_json

    settings = settings_of(ctx)
    if reset:
        model, version = reset_adaptation(settings, progress=not no_progress)
        click.echo(json.dumps({"model": model, "version": version}) if as_json else
                   f"reset to the installed model {model}: {version}")
        return
    exclude = _read_ids(exclude_file) if exclude_file else frozenset()
    result = run_adapt(settings, AdaptOptions(holdout=holdout, exclude=exclude, progress=not no_progress))
    if as_json:
        click.echo(summary_json(result))
        return
    t2i_b, t2i_a = result.before.get("text→image", {}), result.after.get("text→image", {})
    click.echo(f"adapted on {result.trained_on} products ({result.held_out} held out) in {result.seconds:.0f}s; "
               f"held-out text→image R@10 {t2i_b.get('recall@10', 0):.3f} → {t2i_a.get('recall@10', 0):.3f}, "
               f"MRR@10 {t2i_b.get('mrr@10', 0):.3f} → {t2i_a.get('mrr@10', 0):.3f}; published {result.version} "
               f"with {result.model}")


def register(cli: click.Group) -> None:
    """Add the indexer's commands to the `shoplens` group."""
    for command in (index_command, status_command, migrate_command, train_model_command, adapt_command):
        cli.add_command(command)
