"""A small real index for the search, API and browser tests: 300 Myntra products (with their photos, spread over
the catalog's product types) plus the 81-product grocery catalog, built once per test process through the real
`shoplens index` command with the options README.md documents."""
from __future__ import annotations

import csv
import functools
import os
import tempfile
from pathlib import Path

from click.testing import CliRunner

from indexer_data import GROCERY, GROCERY_MAP, MYNTRA, MYNTRA_MAP, write_csv

N_MYNTRA = 300


def myntra_spread(n: int = N_MYNTRA) -> tuple[list[dict], list[str]]:
    """n Myntra rows that have a full-size photo, taken at an even stride so every common type is present."""
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        with_photo = [row for row in reader if row["image_hr"]]
    rows = with_photo[:: len(with_photo) // n][:n]
    for row in rows:
        row["image_hr"] = str(MYNTRA / row["image_hr"])
    return rows, fields


def _index(home: Path, catalog: Path, mapping: list[str], *extra: str) -> None:
    from web.cli import cli

    args = ["--home", str(home), "index", str(catalog), "--no-progress", *extra]
    args += [a for m in mapping for a in ("--map", m)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@functools.cache
def real_home() -> Path:
    """The home folder of the test index (built on first call, then reused by every test of the process)."""
    from web.cli import cli

    reuse = os.environ.get("SHOPLENS_TEST_SEARCH_HOME")  # a home this function built before: skips the build
    if reuse and (Path(reuse) / "index" / "CURRENT").is_file():
        return Path(reuse)
    home = Path(tempfile.mkdtemp(prefix="shoplens-search-test-"))
    assert CliRunner().invoke(cli, ["--home", str(home), "migrate"]).exit_code == 0
    rows, fields = myntra_spread()
    catalog = write_csv(home / "myntra_subset.csv", rows, fields)
    _index(home, GROCERY / "products.csv", GROCERY_MAP)
    _index(home, catalog, MYNTRA_MAP, "--images-root", str(MYNTRA))
    return home
