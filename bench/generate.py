"""Copywriter benchmarks on real Myntra products with the real SmolLM2 model.

    python bench/generate.py speed [--runs 3]            # time to first token, 80-token description, batch rate
    python bench/generate.py quality --n 200 [--home H]  # grounding rate etc. on N products (resumable)

`speed` prints warm figures (the model is loaded and one generation is done before timing) against the goals:
first token <= 1 s, an 80-token description <= 5 s. `quality` writes N spread-out Myntra products into a store
under --home (once), generates their copy in batches (rerunning resumes), then prints and saves the quality
report (web/copywriter/quality.py) to <home>/generate_quality.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import MYNTRA, MYNTRA_MAP  # noqa: E402

from indexer.catalog import CatalogRow, parse_mapping, read_catalog  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.images import ImageResolver  # noqa: E402
from indexer.ingest import add_facts  # noqa: E402
from indexer.store import Product, open_store  # noqa: E402
from web.copywriter.batch import done_in_run  # noqa: E402
from web.copywriter.generate import complete  # noqa: E402
from web.copywriter.prompt import CopyOptions, description_messages, render  # noqa: E402
from web.copywriter.quality import copy_quality  # noqa: E402
from web.copywriter.service import CopyService  # noqa: E402

# The options README.md documents for the Myntra catalog.
log = logging.getLogger("bench.generate")


def myntra_products(n: int, stride: int) -> list[CatalogRow]:
    """Every `stride`-th Myntra product that has a description and a full-size photo, n of them."""
    rows = (row for row in read_catalog(MYNTRA / "products.csv", parse_mapping(MYNTRA_MAP))
            if isinstance(row, CatalogRow) and row.description and (row.image or "").startswith("images_hr/"))
    return list(itertools.islice(rows, 0, n * stride, stride))


def _service(home: Path, n: int, stride: int) -> CopyService:
    """The copywriter on a store under `home` that holds the facts of `n` spread-out Myntra products (made once)."""
    settings = load_settings(home=home)
    store = open_store(settings.db_url, migrate=True)
    with store.session() as s:
        empty = s.scalar(select(func.count()).select_from(Product)) == 0
    if empty:
        add_facts(store, myntra_products(n, stride), ImageResolver([MYNTRA], max_bytes=settings.max_image_bytes))
    return CopyService(settings, store=store)


def speed(args: argparse.Namespace) -> None:
    service = _service(Path(args.home), 16, 700)
    options = CopyOptions(length="medium", retries=0)
    facts = service.facts([p.id for p in myntra_products(n=16, stride=700)])
    writer = service.writer
    writer.write(facts[:1], options)  # warm-up: caches, lexicon token map, first-call overheads
    ttft, full = [], []
    for i in range(args.runs):
        start = time.perf_counter()
        first = None
        for piece in writer.stream(facts[i % len(facts)], options):
            if first is None:
                first = time.perf_counter() - start
        ttft.append(first)
        prompt = render(writer.llm.tokenizer, description_messages(facts[i % len(facts)], options))
        start = time.perf_counter()
        out = complete(writer.llm, [prompt], [set()], 80)[0]  # exactly 80 new tokens unless EOS comes first
        n_tokens = len(writer.llm.tokenizer.encode(out, add_special_tokens=False))
        full.append((time.perf_counter() - start) * 80 / max(n_tokens, 1))
    start = time.perf_counter()
    batch = facts[:args.batch]
    writer.write(batch, options)
    per_minute = len(batch) / (time.perf_counter() - start) * 60
    print(json.dumps({"time_to_first_token_s": round(statistics.median(ttft), 3),
                      "seconds_per_80_token_description": round(statistics.median(full), 2),
                      "descriptions_per_minute_batch": round(per_minute, 2), "batch_size": len(batch),
                      "runs": args.runs, "goals": {"ttft_s": 1.0, "s_per_80_tokens": 5.0}}, indent=1))


def quality(args: argparse.Namespace) -> None:
    home = Path(args.home)
    service = _service(home, args.n, args.stride)
    with service.store.session() as s:
        ids = list(s.scalars(select(Product.id).order_by(Product.key)))[:args.n]
    options = CopyOptions(length="medium", retries=args.retries)
    done = done_in_run(service.store, ids, "bench")
    todo = [] if args.report_only else [pid for pid in ids if pid not in done]
    log.info("%d products, %d already written, %d to go", len(ids), len(done), len(todo))
    started = time.perf_counter()
    for i in range(0, len(todo), args.batch):
        chunk = todo[i:i + args.batch]
        service.generate(chunk, options, author="bench", extra_params={"batch_run": "bench"})
        log.info("%d/%d written (%.0f s)", len(done) + i + len(chunk), len(ids), time.perf_counter() - started)
    report = copy_quality(service.store, llm=service.writer.llm, reader=service.reader,
                          product_ids=[pid for pid in ids if pid in done or pid in todo],
                          perplexity_sample=args.perplexity_sample)
    report["options"] = {"length": options.length, "retries": options.retries, "batch": args.batch}
    (home / "generate_quality.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "indexer.model.lite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--home", default=str(ROOT / "bench" / "out" / "generate-speed"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p = sub.add_parser("quality")
    p.add_argument("--home", default=str(ROOT / "bench" / "out" / "generate-quality"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--stride", type=int, default=50, help="take every k-th Myntra product with image+description")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--perplexity-sample", type=int, default=100)
    p.add_argument("--report-only", action="store_true", help="no generation: report on what is written so far")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
