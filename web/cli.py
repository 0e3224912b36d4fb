"""The `shoplens` command line (interfaces.md): the root group here; each area (indexer, search, web) adds its
commands with its own `register(cli)`.

Errors a user can cause (`ShopLensError`) print one line to stderr and exit 1; `--debug` shows the traceback.
"""
from __future__ import annotations

import logging
import sys

import click

from indexer import commands as indexer_commands
from indexer.config import load_settings
from indexer.errors import ShopLensError
from indexer.memory import tune_malloc
from search import cli as search_commands
from web import commands as web_commands


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


for area in (indexer_commands, search_commands, web_commands):
    area.register(cli)


def main() -> None:
    tune_malloc()  # before torch and the decoders allocate; gunicorn's workers inherit it
    cli(prog_name="shoplens")


if __name__ == "__main__":
    main()
