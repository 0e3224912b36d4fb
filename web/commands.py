"""The web area's commands: `shoplens serve`, `generate` and `publish-copy`, added to the group by `register`.

`register` also plugs the copywriter's quality numbers into `shoplens eval`: search must not import web/, so the
copywriter registers its provider by name, imported (with its models) only when an eval asks for it.
"""
from __future__ import annotations

import click

from search.evaluation.measures import register_generation_metrics
from web.copywriter.batch import generate_command
from web.copywriter.publish import publish_copy_command
from web.serve import serve_command

GENERATION_METRICS = "web.copywriter.quality:eval_metrics"


def register(cli: click.Group) -> None:
    """Add the web area's commands to the `shoplens` group, and the copywriter's numbers to `shoplens eval`."""
    for command in (serve_command, generate_command, publish_copy_command):
        cli.add_command(command)
    register_generation_metrics(GENERATION_METRICS)
