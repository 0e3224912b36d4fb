"""Questions and captions (issue #15), measured in one command:

    .venv/bin/python bench/vqa.py [--home HOME] [--write]

1. VQA (`shoplens eval vqa`'s code): image-only answers to questions built from catalog attributes, accuracy per
   question type against the majority-class baseline. Myntra: 500 products held out from shoplens-lite's training
   (indexer/model/weights/training.json), 2,000 training products as the neighbour pool. IKEA (type, colour: the
   colour column of product_attributes.csv joined in) and grocery (type, the printed brand read by OCR): the
   model never saw them, so all are held out; the pool is the other evaluated products (+ more of the catalog).
2. Captions of the same held-out Myntra and IKEA products (search.ask.caption with the same neighbour pool):
   caption → own product Recall@10 among the evaluated products' photos (the catalog title as the query in the
   same run as the baseline), CLIPScore (100 × 2.5 × cos with our encoder), corpus BLEU-4 against the titles
   (search.evaluation.captions), 10 examples.
3. Latency on HOME (default: the shared test index): p50 of a fact answer, an image-only answer and a caption
   against a plain text search in the same run, with the load average.

The read's constants (prompt templates, temperatures, neighbour weight, abstain threshold) were set on Myntra
training products (search/ask/reads.py); nothing here tunes them. Results go to stdout and bench/out/vqa/results.json;
`--write` puts them in bench/RESULTS.md (section "vqa").
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import GROCERY, GROCERY_MAP, IKEA, IKEA_MAP, MYNTRA, MYNTRA_MAP  # noqa: E402

from indexer.config import load_settings  # noqa: E402
from indexer.images import ImageResolver  # noqa: E402
from indexer.model.encoder import load_encoder  # noqa: E402
from search.ask.caption import caption_of  # noqa: E402
from search.evaluation import builders, heldout, vqa  # noqa: E402
from search.evaluation.captions import clip_score, corpus_bleu, recall_at_k  # noqa: E402

log = logging.getLogger("bench.vqa")
OUT = ROOT / "bench" / "out" / "vqa"
MAX_BYTES, MAX_PIXELS = 50_000_000, 40_000_000


def ikea_catalog(folder: Path) -> Path:
    """IKEA's products.csv with the colour of product_attributes.csv joined in (products.csv has none)."""
    with open(IKEA / "product_attributes.csv", newline="", encoding="utf-8") as fh:
        colour = {r["product_id"]: r["colour"] for r in csv.DictReader(fh)}
    with open(IKEA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [{**r, "colour": colour.get(r["product_id"], "")} for r in reader]
        fields = [*(reader.fieldnames or []), "colour"]
    path = folder / "ikea_with_colour.csv"
    for row in rows:  # images stay where they are: the joined CSV names them absolutely
        row["image_path"] = str(IKEA / row["image_path"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_catalog(name: str, encoder, catalog: Path, mapping: list[str], topics: list[str], n: int, reference: int,
                training: frozenset[str], *, printed=None, captions: bool = True) -> dict:
    started = time.perf_counter()
    rows = builders.read_catalog_rows(catalog, mapping)
    resolver = ImageResolver([catalog.parent], max_bytes=MAX_BYTES)
    items = vqa.pick_items(rows, training, n, 0, resolver, MAX_PIXELS)
    pool_items = vqa.pick_reference(rows, training, items, reference, 0, resolver, MAX_PIXELS)
    vectors = vqa.encode_images(encoder, [it.image for it in items])
    pool = vqa.Pool.of(encoder, items, vectors, pool_items)
    out = {"products": len(items), "pool": len(pool.ids), "excluded_training": sum(r["id"] in training for r in rows),
           "vqa": vqa.evaluate_vqa(rows, items, vectors, pool, encoder, topics, printed)}
    if captions:
        vocabulary = vqa.catalog_vocabulary(rows)
        texts = [caption_of(vocabulary, encoder, v, [], pool.neighbours(vocabulary, v, it.row["id"])).caption
                 for it, v in zip(items, vectors)]
        titles = [it.row["title"] for it in items]
        cap_vecs, title_vecs = encoder.encode_texts(texts), encoder.encode_texts(titles)
        own = list(range(len(items)))
        out["captions"] = {
            "recall@10": round(recall_at_k(cap_vecs, vectors, own), 4),
            "title_recall@10": round(recall_at_k(title_vecs, vectors, own), 4),
            "clipscore": round(clip_score(cap_vecs, vectors), 2),
            "title_clipscore": round(clip_score(title_vecs, vectors), 2),
            "bleu_vs_titles": round(corpus_bleu(texts, titles), 2),
            "examples": [{"id": it.row["id"], "title": t, "caption": c} for it, t, c in zip(items, titles, texts)][:5]}
    out["wall_s"] = round(time.perf_counter() - started, 1)
    log.info("%s done in %.0f s", name, out["wall_s"])
    return out


def latency(home: Path, rounds: int = 40) -> dict:
    """p50 (ms) of answers and captions against a text search, over the Myntra products of HOME."""
    from search.engine import SearchEngine
    from search.query import Query

    engine = SearchEngine(load_settings(home=home))
    engine.warm_up()
    products = [p for p in engine.state().table.products if p.brand and p.has_image][:rounds]
    engine.captions(products[:1])

    def p50(fn) -> float:
        times = []
        for p in products:
            t = time.perf_counter()
            fn(p)
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 1)

    search = p50(lambda p: engine.search(Query(text=p.title, k=10)))
    engine.state().captions.clear()
    out = {"search_p50_ms": search,
           "ask_facts_p50_ms": p50(lambda p: engine.ask(p.id, "what colour is it?")),
           "ask_image_p50_ms": p50(lambda p: engine.ask(p.id, "what colour is it?", image_only=True)),
           "caption_p50_ms": p50(lambda p: engine.caption(p.id)),
           "products": len(products), "load_average": round(os.getloadavg()[0], 1)}
    out["ratios_vs_search"] = {k: round(out[k] / search, 2) for k in ("ask_facts_p50_ms", "ask_image_p50_ms",
                                                                      "caption_p50_ms")}
    return out


def write_results(results: dict) -> None:
    """Replace the "vqa" section of bench/RESULTS.md."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    begin, end = "<!-- vqa:begin -->", "<!-- vqa:end -->"
    body = [begin, "## vqa (`.venv/bin/python bench/vqa.py --write`)", "",
            f"Measured {results['measured']} UTC, load average {results['load_average']}, model {results['model']}. "
            "Image-only answers; an abstention counts as wrong. Read constants set on Myntra training products.", ""]
    for name in ("myntra", "ikea", "grocery"):
        r = results[name]
        body += [f"### {name}: {r['products']} held-out products, neighbour pool {r['pool']}", "",
                 vqa.vqa_table(r["vqa"]), ""]
    body += ["### captions", "", "| catalog | R@10 caption | R@10 title (baseline) | CLIPScore caption | "
             "CLIPScore title | BLEU-4 vs title |", "| --- | --- | --- | --- | --- | --- |"]
    for name in ("myntra", "ikea"):
        c = results[name]["captions"]
        body.append(f"| {name} ({results[name]['products']} products) | {c['recall@10']:.3f} | "
                    f"{c['title_recall@10']:.3f} | {c['clipscore']:.1f} | {c['title_clipscore']:.1f} | "
                    f"{c['bleu_vs_titles']:.1f} |")
    body += ["", "| product | title | caption |", "| --- | --- | --- |"]
    body += [f"| {e['id']} | {e['title']} | {e['caption']} |" for n in ("myntra", "ikea")
             for e in results[n]["captions"]["examples"]]
    lat = results["latency"]
    body += ["", f"### latency ({lat['products']} products of the test index, load average {lat['load_average']})", "",
             "| what | p50 ms | × text search |", "| --- | --- | --- |",
             f"| text search (baseline) | {lat['search_p50_ms']} | 1.00 |"]
    body += [f"| {k.removesuffix('_p50_ms').replace('_', ' ')} | {lat[k]} | {lat['ratios_vs_search'][k]} |"
             for k in ("ask_facts_p50_ms", "ask_image_p50_ms", "caption_p50_ms")]
    body.append(end)
    section = "\n".join(body)
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=os.environ.get("SHOPLENS_TEST_SEARCH_HOME"),
                        help="an indexed home for the latency part (default: $SHOPLENS_TEST_SEARCH_HOME)")
    parser.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    encoder = load_encoder("shoplens-lite")
    record = heldout.training_record(heldout.model_folder("shoplens-lite"))
    training = record.products if record else frozenset()
    from indexer.reading import load_reader

    reader = load_reader()
    results = {"measured": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "model": encoder.name}
    with tempfile.TemporaryDirectory() as tmp:
        results["myntra"] = run_catalog("myntra", encoder, MYNTRA / "products.csv", MYNTRA_MAP,
                                        list(vqa.DEFAULT_TOPICS), 500, 2000, training)
        results["ikea"] = run_catalog("ikea", encoder, ikea_catalog(Path(tmp)), [*IKEA_MAP, "colour=colour"],
                                      ["type", "colour"], 400, 1200, training)
    results["grocery"] = run_catalog(
        "grocery", encoder, GROCERY / "products.csv", GROCERY_MAP, ["type", "brand"], 81, 0, training,
        printed=lambda image: [(l.text, l.confidence) for l in reader.read_image(image, turn=True).lines],
        captions=False)
    if args.home:
        results["latency"] = latency(Path(args.home))
    results["load_average"] = round(os.getloadavg()[0], 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in results.items()}, indent=1, ensure_ascii=False)[:20000])
    if args.write:
        write_results(results)


if __name__ == "__main__":
    main()
