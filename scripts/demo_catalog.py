"""Write the demo catalog: the first N Myntra products that have a sharp (images_hr) image.

The rows are copied from ../shared/datasets/myntra_fashion/products.csv into the ShopLens home (never into the
repo); images stay where they are and are found through --images-root.
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

log = logging.getLogger("shoplens.demo")


def write_demo_catalog(source: Path, out: Path, n: int) -> int:
    """Copy the header and the first `n` rows with a non-empty `image_hr`; return how many were written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    written = 0
    with source.open(newline="", encoding="utf-8") as src, tmp.open("w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if written >= n:
                break
            if row.get("image_hr"):
                writer.writerow(row)
                written += 1
    tmp.replace(out)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = write_demo_catalog(args.source, args.out, args.n)
    log.info("demo catalog: %d products -> %s", count, args.out)


if __name__ == "__main__":
    main()
