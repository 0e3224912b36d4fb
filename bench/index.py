"""Indexing benchmark (issue 3): prints figures, writes them to bench/out/index-<phase>.json.

  python bench/index.py throughput [--n 5000]   end-to-end products/s on N Myntra products vs the encoder's bare
                                                throughput on the same images and texts (same process, same run)
  python bench/index.py full                    wall time and peak memory of `shoplens index` on all 44,441
                                                products, then an incremental rerun with 1% of products changed

Both use a throwaway --home under bench/out/ and the README's Myntra options. Run on an otherwise idle machine
for figures you want to compare; the load average is printed with each result.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra_fashion"
OUT = ROOT / "bench" / "out"
MYNTRA_MAP = ["image=image_hr,thumbs_60x80.zip#{thumb_60x80}", "title=title,{brand} {variant_name}",
              "category=master_category>sub_category>article_type", "colour=base_colour",
              "price=discounted_price_inr,price_inr"]
log = logging.getLogger("bench.index")


def _map_args() -> list[str]:
    return [a for m in MYNTRA_MAP for a in ("--map", m)]


def _write_subset(rows: list[dict], fields: list[str], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _read_catalog() -> tuple[list[dict], list[str]]:
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader), list(reader.fieldnames or [])


def _report(phase: str, result: dict) -> None:
    result = {**result, "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"index-{phase}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def throughput(n: int) -> None:
    """End-to-end (run_index) vs bare encoder on the same n products, in one process."""
    import torch

    from indexer.catalog import CatalogRow, parse_mapping, read_catalog
    from indexer.config import load_settings
    from indexer.encoder import load_encoder
    from indexer.images import ImageResolver, decode_image
    from indexer.pipeline import IndexOptions, run_index

    home = OUT / "throughput-home"
    shutil.rmtree(home, ignore_errors=True)
    rows, fields = _read_catalog()
    catalog = OUT / f"myntra-{n}.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    _write_subset(rows[:n], fields, catalog)
    settings = load_settings(home=home)
    encoder = load_encoder(settings.model_spec, cache_dir=settings.cache_dir)  # loaded once for both measurements

    start = time.perf_counter()
    summary = run_index(settings, IndexOptions(catalog=catalog, images_root=MYNTRA, mapping=MYNTRA_MAP))
    e2e_s = time.perf_counter() - start

    items = [r for r in read_catalog(catalog, parse_mapping(MYNTRA_MAP)) if isinstance(r, CatalogRow)]
    resolver = ImageResolver([MYNTRA], max_bytes=settings.max_image_bytes)
    tensors = torch.stack([encoder.preprocess(decode_image(resolver.read(r.image)[0],
                                                           max_pixels=settings.max_image_pixels)[0])
                           for r in items])
    texts = [r.text() for r in items]
    bs = settings.batch_size
    start = time.perf_counter()
    for i in range(0, len(items), bs):
        encoder.encode_image_tensors(tensors[i:i + bs])
    image_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(items), bs):
        encoder.encode_texts(texts[i:i + bs])
    text_s = time.perf_counter() - start
    e2e = summary.indexed / e2e_s
    bare = len(items) / (image_s + text_s)
    _report("throughput", {
        "products": summary.indexed, "end_to_end_s": round(e2e_s, 1), "end_to_end_products_per_s": round(e2e, 2),
        "bare_image_s": round(image_s, 1), "bare_text_s": round(text_s, 1),
        "bare_encoder_products_per_s": round(bare, 2), "ratio_end_to_end_vs_bare": round(e2e / bare, 3),
        "note": "bare = encode_image_tensors + encode_texts on pre-decoded tensors, same batch size; end-to-end "
                "includes reading, hashing, decoding, preprocessing, DB writes and publishing the version"})


def _run_cli(home: Path, catalog: Path, label: str) -> dict:
    """Run `shoplens index` as a child process; wall time and the child's peak RSS."""
    cmd = [str(ROOT / ".venv" / "bin" / "shoplens"), "--home", str(home), "index", str(catalog),
           "--images-root", str(MYNTRA), *_map_args(), "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{label} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    log.info("%s: %s", label, proc.stdout.strip())
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
            "exit": proc.returncode, "summary": proc.stdout.strip()}


def full() -> None:
    """All 44,441 products from scratch, then a rerun with 1% of products' titles changed (re-embedded)."""
    home = OUT / "full-home"
    shutil.rmtree(home, ignore_errors=True)
    first = _run_cli(home, MYNTRA / "products.csv", "full build")
    _report("full", {"full_build": first})
    rows, fields = _read_catalog()
    step = 100  # every 100th product: 1%
    for row in rows[::step]:
        row["title"] = f"{row['title']} (new season)"
    changed = OUT / "myntra-1pct-changed.csv"
    _write_subset(rows, fields, changed)
    second = _run_cli(home, changed, "incremental rerun")
    _report("full", {"full_build": first, "incremental_1pct": {**second, "changed_products": len(rows[::step])},
                     "incremental_vs_full": round(second["wall_s"] / first["wall_s"], 4)})


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    sub.add_parser("throughput").add_argument("--n", type=int, default=5000)
    sub.add_parser("full")
    args = parser.parse_args()
    throughput(args.n) if args.phase == "throughput" else full()


if __name__ == "__main__":
    main()
