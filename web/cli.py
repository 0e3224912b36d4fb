"""The `shoplens` command line (interfaces.md). Each area registers its commands on the one group here.

Errors a user can cause (`ShopLensError`) print one line to stderr and exit 1; `--debug` shows the traceback.
"""
from __future__ import annotations

import logging
import sys

import click

from indexer.config import load_settings, settings_of
from indexer.errors import ShopLensError

log = logging.getLogger("shoplens")


class ShopLensGroup(click.Group):
    """A click group that turns ShopLensError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ShopLensError as exc:
            if ctx.meta.get("shoplens.debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=ShopLensGroup)
@click.option("--home", type=click.Path(file_okay=False), envvar="SHOPLENS_HOME", default=None,
              help="Folder for the database, index versions and caches (default ./.shoplens).")
@click.option("--db", "db_url", envvar="SHOPLENS_DB", default=None,
              help="Database URL, e.g. postgresql+psycopg://user@127.0.0.1/shoplens (default SQLite in --home).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db_url: str | None, debug: bool) -> None:
    """ShopLens: multimodal product search."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.meta["shoplens.debug"] = debug
    ctx.obj = load_settings(home=home, db_url=db_url)


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    from indexer.store import upgrade

    settings = settings_of(ctx)
    upgrade(settings.db_url)
    click.echo("database is at the head revision")


from indexer.commands import index_command, status_command  # noqa: E402

cli.add_command(index_command)
cli.add_command(status_command)
from indexer.model.training.train import train_model_command  # noqa: E402
cli.add_command(train_model_command)
from search.evaluation.cli import eval_command  # noqa: E402
from search.evaluation.measures import register_generation_metrics  # noqa: E402
cli.add_command(eval_command)
register_generation_metrics("web.copywriter.quality:copy_quality")
from search.cli import search_command, similar_command  # noqa: E402
from web.serve import serve_command  # noqa: E402
cli.add_command(search_command)
cli.add_command(similar_command)
cli.add_command(serve_command)
from web.copywriter.batch import generate_command  # noqa: E402
cli.add_command(generate_command)
from web.copywriter.publish import publish_copy_command  # noqa: E402
cli.add_command(publish_copy_command)


def main() -> None:
    cli(prog_name="shoplens")


if __name__ == "__main__":
    main()
