"""Indexing benchmark (issue 3): prints figures, writes them to bench/out/index-<phase>.json.

  python bench/index.py throughput [--n 5000] [--model SPEC] [--read-text auto|on|off]
                                                end-to-end products/s on N Myntra products vs the encoders' bare
                                                throughput on the same images, texts and passages (same process)
  python bench/index.py full [--n N]           wall time and peak memory of `shoplens index` on all 44,441
                                                products (or the first N), then a rerun with 1% of them changed
  python bench/index.py rerun --home H --catalog C [--images-root R]
                                                the 1%-changed rerun alone, on a home already indexed from C,
                                                against that home's first full build (from ingest_runs)

Both use a throwaway --home under bench/out/ and the README's Myntra options. Run on an otherwise idle machine
for figures you want to compare; the load average is printed with each result.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
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
from catalogs import MYNTRA, MYNTRA_MAP  # noqa: E402
OUT = ROOT / "bench" / "out"
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


def throughput(n: int, model: str | None = None, read_text: str = "auto") -> None:
    """End-to-end (run_index) vs bare encoders on the same n products, in one process: the image and text towers of
    `model` (default: the home's) and, where the settings have it, the multilingual model on the products' passages.
    `read_text` as `shoplens index --read-text` (auto's sample of 16 OCR readings is not in "bare"; off is how
    bench/peer.py indexes, like the peer)."""
    import torch
    from sqlalchemy import select

    from indexer.catalog import CatalogRow, parse_mapping, read_catalog
    from indexer.config import load_settings
    from indexer.model.adapted import home_model_spec
    from indexer.model.encoder import load_encoder
    from indexer.images import ImageResolver, decode_image
    from indexer.model.multilingual import load_multilingual
    from indexer.multilingual import BATCH, product_passage
    from indexer.pipeline import IndexOptions, run_index
    from indexer.store import Product, open_store

    home = OUT / "throughput-home"
    shutil.rmtree(home, ignore_errors=True)
    rows, fields = _read_catalog()
    catalog = OUT / f"myntra-{n}.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    _write_subset(rows[:n], fields, catalog)
    settings = dataclasses.replace(load_settings(home=home), read_text=read_text)
    spec = model or home_model_spec(settings)
    encoder = load_encoder(spec, cache_dir=settings.model_cache_dir)  # loaded once for both measurements

    start = time.perf_counter()
    summary = run_index(settings, IndexOptions(catalog=catalog, images_root=MYNTRA, mapping=MYNTRA_MAP,
                                               model_spec=model))
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
    multilingual_s = 0.0
    if settings.multilingual:  # the pipeline's third forward pass: the same passages, batches and threads
        with open_store(settings.db_url).session() as s:
            passages = [product_passage(p) for p in s.scalars(select(Product).where(Product.status == "active"))]
        ml = load_multilingual()
        start = time.perf_counter()
        for i in range(0, len(passages), BATCH):
            ml.encode_passages(passages[i:i + BATCH], threads=os.cpu_count())
        multilingual_s = time.perf_counter() - start
    e2e = summary.indexed / e2e_s
    bare = len(items) / (image_s + text_s + multilingual_s)
    _report("throughput", {
        "model": encoder.name, "precision": encoder.precision, "read_text": read_text, "products": summary.indexed,
        "end_to_end_s": round(e2e_s, 1),
        "end_to_end_products_per_s": round(e2e, 2),
        "bare_image_s": round(image_s, 1), "bare_text_s": round(text_s, 1), "bare_multilingual_s": round(multilingual_s, 1),
        "bare_encoder_products_per_s": round(bare, 2), "ratio_end_to_end_vs_bare": round(e2e / bare, 3),
        "note": "bare = encode_image_tensors + encode_texts on pre-decoded tensors, same batch size, plus the "
                "multilingual passages; end-to-end includes reading, hashing, decoding, preprocessing, reading "
                "printed text where auto decides to, DB writes and publishing the version"})


def _run_cli(home: Path, catalog: Path, label: str, images_root: Path) -> dict:
    """Run `shoplens index` as a child process; wall time and the child's peak RSS."""
    cmd = [str(ROOT / ".venv" / "bin" / "shoplens"), "--home", str(home), "index", str(catalog),
           "--images-root", str(images_root), *_map_args(), "--no-progress"]
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


def _changed_copy(catalog: Path, out: Path) -> int:
    """Copy `catalog` with every 100th product's title changed (1%: text re-embedded); returns how many."""
    with open(catalog, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows, fields = list(reader), list(reader.fieldnames or [])
    for row in rows[::100]:
        row["title"] = f"{row['title']} (new season)"
    _write_subset(rows, fields, out)
    return len(rows[::100])


def _rerun(home: Path, catalog: Path, images_root: Path, first: dict) -> dict:
    changed = OUT / f"{catalog.stem}-1pct-changed.csv"
    n_changed = _changed_copy(catalog, changed)
    second = _run_cli(home, changed, "incremental rerun", images_root)
    return {"full_build": first, "incremental_1pct": {**second, "changed_products": n_changed},
            "incremental_vs_full": round(second["wall_s"] / first["wall_s"], 4)}


def full(n: int | None) -> None:
    """All products (or the first n) from scratch, then a rerun with 1% of them changed."""
    home = OUT / "full-home"
    shutil.rmtree(home, ignore_errors=True)
    catalog = MYNTRA / "products.csv"
    if n:
        rows, fields = _read_catalog()
        catalog = OUT / f"myntra-{n}.csv"
        _write_subset(rows[:n], fields, catalog)
    first = _run_cli(home, catalog, "full build", MYNTRA)
    _report("full", {"full_build": first})
    _report("full", _rerun(home, catalog, MYNTRA, first))


def rerun(home: Path, catalog: Path, images_root: Path) -> None:
    """The 1% rerun on an existing home; the full build's time is that home's first ingest run."""
    from sqlalchemy import select

    from indexer.config import load_settings
    from indexer.store import IngestRun, open_store

    with open_store(load_settings(home=home).db_url).session() as s:
        run = s.scalars(select(IngestRun).where(IngestRun.status == "done").order_by(IngestRun.id)).first()
    if run is None:
        raise SystemExit(f"{home} has no finished index run to compare with")
    first = {"wall_s": run.counts["seconds"], "summary": run.counts, "source": f"ingest_runs id {run.id} "
             "(run_index time, without process start and model load)"}
    _report("rerun", _rerun(home, catalog, images_root, first))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    throughput_args = sub.add_parser("throughput")
    throughput_args.add_argument("--n", type=int, default=5000)
    throughput_args.add_argument("--model", help="encoder spec (default: the home's, shoplens-lite)")
    throughput_args.add_argument("--read-text", choices=("auto", "on", "off"), default="auto")
    sub.add_parser("full").add_argument("--n", type=int, default=None)
    rerun_args = sub.add_parser("rerun")
    rerun_args.add_argument("--home", type=Path, required=True)
    rerun_args.add_argument("--catalog", type=Path, required=True)
    rerun_args.add_argument("--images-root", type=Path, default=MYNTRA)
    args = parser.parse_args()
    if args.phase == "throughput":
        throughput(args.n, args.model, args.read_text)
    elif args.phase == "full":
        full(args.n)
    else:
        rerun(args.home, args.catalog, args.images_root)


if __name__ == "__main__":
    main()
