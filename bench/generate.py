"""Copywriter benchmarks on real products of three catalogs with the real SmolLM2 model.

    python bench/generate.py speed [--runs 3]                  # first token, 80-token description, batch rate
    python bench/generate.py quality --catalog all --n 100     # the issue-17 goals per catalog (resumable)

`speed` prints warm figures (the model is loaded and one generation is done before timing) against the goals:
first token <= 1 s, an 80-token description <= 5 s (with the default sampling, and greedy beside it as the same
run's baseline, and the same greedy run with the model's fp32 weights as the baseline of the default fp16 weights).
`quality` writes N spread-out products of each catalog
(myntra | ikea | grocery | all; grocery has 81) into a store under <home>/<catalog> (once), generates their copy
in batches (rerunning resumes), then prints and saves the quality report (web/copywriter/quality.py, plus the
merchandiser checks of web/copywriter/polish.py) to <home>/<catalog>/generate_quality.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import GROCERY, GROCERY_MAP, IKEA, IKEA_MAP, MYNTRA, MYNTRA_MAP  # noqa: E402

from indexer.catalog import CatalogRow, parse_mapping, read_catalog  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.images import ImageResolver  # noqa: E402
from indexer.ingest import add_facts  # noqa: E402
from indexer.store import Product, open_store  # noqa: E402
from web.copywriter.batch import done_in_run  # noqa: E402
from web.copywriter.generate import complete  # noqa: E402
from web.copywriter.llm import load_llm  # noqa: E402
from web.copywriter.prompt import TARGET_WORDS, CopyOptions  # noqa: E402
from web.copywriter.quality import copy_quality, latest_generated  # noqa: E402
from web.copywriter.service import CopyService  # noqa: E402

# The options README.md documents for the Myntra catalog.
log = logging.getLogger("bench.generate")


# catalog → (folder, --map options, products.csv rows kept). Myntra: products with a description and a sharp photo,
# offset by 25 from the rows the copywriter was tuned on before (every 50th from the first); IKEA and grocery:
# every product (never tuned on).
CATALOGS = {
    "myntra": (MYNTRA, MYNTRA_MAP, lambda row: bool(row.description) and (row.image or "").startswith("images_hr/")),
    "ikea": (IKEA, IKEA_MAP, lambda row: True),
    "grocery": (GROCERY, GROCERY_MAP, lambda row: True),
}


def catalog_products(catalog: str, n: int, *, offset: int = 0) -> list[CatalogRow]:
    """n products of `catalog`, spread evenly over its kept rows (starting `offset` rows in)."""
    folder, mapping, keep = CATALOGS[catalog]
    rows = [row for row in read_catalog(folder / "products.csv", parse_mapping(mapping))
            if isinstance(row, CatalogRow) and keep(row)]
    stride = max(1, (len(rows) - offset) // n)
    return list(itertools.islice(rows, offset, None, stride))[:n]


def _service(home: Path, catalog: str, n: int) -> CopyService:
    """The copywriter on a store under `home` that holds the facts of `n` spread-out products (made once)."""
    settings = load_settings(home=home)
    store = open_store(settings.db_url, migrate=True)
    with store.session() as s:
        empty = s.scalar(select(func.count()).select_from(Product)) == 0
    if empty:
        folder = CATALOGS[catalog][0]
        rows = catalog_products(catalog, n, offset=25 if catalog == "myntra" else 0)
        add_facts(store, rows, ImageResolver([folder], max_bytes=settings.max_image_bytes))
    return CopyService(settings, store=store)


def speed(args: argparse.Namespace) -> None:
    service = _service(Path(args.home), "myntra", 16)
    options = CopyOptions(length="medium", retries=0)
    with service.store.session() as s:
        facts = service.facts(list(s.scalars(select(Product.id).order_by(Product.key)))[:16])
    writer = service.writer
    fp32 = load_llm(service.llm_spec, cache_dir=service.settings.model_cache_dir, weights="fp32")  # the baseline
    writer.write(facts[:1], options)  # warm-up: caches, lexicon token map, first-call overheads
    ttft, full, greedy, greedy_fp32, same = [], [], [], [], []
    for i in range(args.runs):
        start = time.perf_counter()
        first = None
        for piece in writer.stream(facts[i % len(facts)], options):
            if first is None:
                first = time.perf_counter() - start
        ttft.append(first)
        prompt = writer.job(facts[i % len(facts)], options).prompt
        texts = []
        for llm, temperature, times in ((writer.llm, options.temperature, full), (writer.llm, 0.0, greedy),
                                        (fp32, 0.0, greedy_fp32)):  # greedy and fp32: baselines in the same run
            start = time.perf_counter()
            texts.append(complete(llm, [prompt], [set()], 80, temperature=temperature, seeds=[i],
                                  min_new_tokens=80))  # exactly 80 new tokens each: EOS is held back
            times.append(time.perf_counter() - start)
        same.append(texts[1] == texts[2])
    start = time.perf_counter()
    batch = facts[:args.batch]
    writer.write(batch, options)
    per_minute = len(batch) / (time.perf_counter() - start) * 60
    print(json.dumps({"time_to_first_token_s": round(statistics.median(ttft), 3),
                      "seconds_per_80_token_description": round(statistics.median(full), 2),
                      "seconds_per_80_token_greedy": round(statistics.median(greedy), 2),
                      "sampled_over_greedy": round(statistics.median(full) / statistics.median(greedy), 3),
                      "weights": service.settings.llm_weights,
                      "seconds_per_80_token_greedy_fp32": round(statistics.median(greedy_fp32), 2),
                      "greedy_over_fp32_greedy": round(statistics.median(greedy) / statistics.median(greedy_fp32), 3),
                      "greedy_text_same_as_fp32": f"{sum(same)}/{len(same)}",
                      "descriptions_per_minute_batch": round(per_minute, 2), "batch_size": len(batch),
                      "runs": args.runs, "temperature": options.temperature, "goals": {"ttft_s": 1.0, "s_per_80_tokens": 5.0}}, indent=1))


def quality_one(home: Path, catalog: str, args: argparse.Namespace) -> dict:
    """Generate (resuming) and report on one catalog's products under `home`."""
    service = _service(home, catalog, args.n)
    with service.store.session() as s:
        ids = list(s.scalars(select(Product.id).order_by(Product.key)))[:args.n]
    options = CopyOptions(length=args.length, retries=args.retries, temperature=args.temperature, seed=args.seed)
    done = done_in_run(service.store, ids, "bench")
    todo = [] if args.report_only else [pid for pid in ids if pid not in done]
    log.info("%s: %d products, %d already written, %d to go", catalog, len(ids), len(done), len(todo))
    started = time.perf_counter()
    for i in range(0, len(todo), args.batch):
        chunk = todo[i:i + args.batch]
        service.generate(chunk, options, author="bench", extra_params={"batch_run": "bench"})
        log.info("%s: %d/%d written (%.0f s, load %.1f)", catalog, len(done) + i + len(chunk), len(ids),
                 time.perf_counter() - started, os.getloadavg()[0])
    written = [pid for pid in ids if pid in done or pid in todo]
    report = copy_quality(service.store, llm=service.writer.llm if args.perplexity_sample else None,
                          product_ids=written, perplexity_sample=args.perplexity_sample)
    report["options"] = {"catalog": catalog, "length": options.length, "requested_words": TARGET_WORDS[args.length],
                         "retries": options.retries, "temperature": options.temperature, "batch": args.batch, "model": service.llm_spec}
    if todo:
        report["seconds_per_description"] = round((time.perf_counter() - started) / len(todo), 2)
        report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    (home / "generate_quality.json").write_text(json.dumps(report, indent=1))
    with open(home / "texts.jsonl", "w", encoding="utf-8") as fh:
        for product, version in latest_generated(service.store, written):
            fh.write(json.dumps({"product_id": product.id, "title": product.title, "text": version.text},
                                ensure_ascii=False) + "\n")
    return report


def quality(args: argparse.Namespace) -> None:
    catalogs = list(CATALOGS) if args.catalog == "all" else [args.catalog]
    reports = {c: quality_one(Path(args.home) / c, c, args) for c in catalogs}
    summary = {c: {"n": r["n_products"], "grounded": r["grounding"]["no_unsupported_claims"],
                   "grounded_in_catalog_alone": r["grounding"]["no_claims_beyond_catalog"],
                   "median_words": r["merchandiser"]["median_words"],
                   "requested_words": r["options"]["requested_words"],
                   "no_repeats_or_field_prose": r["merchandiser"]["no_repeats_or_field_prose"],
                   "self_bleu": r["self_bleu"], "names_as_in_catalog": r["merchandiser"]["names_as_in_catalog"],
                   "no_garbled": r["merchandiser"]["no_garbled"],
                   "s_per_description": r.get("seconds_per_description")} for c, r in reports.items()}
    print(json.dumps(summary, indent=1))


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
    p.add_argument("--catalog", choices=[*CATALOGS, "all"], default="all")
    p.add_argument("--n", type=int, default=100, help="products per catalog (spread evenly)")
    p.add_argument("--length", choices=list(TARGET_WORDS), default="medium")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--temperature", type=float, default=CopyOptions.temperature, help="0: greedy first attempt")
    p.add_argument("--seed", type=int, default=0, help="another seed: another draw of every text")
    p.add_argument("--perplexity-sample", type=int, default=0, help="source descriptions to score (0: skip)")
    p.add_argument("--report-only", action="store_true", help="no generation: report on what is written so far")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
