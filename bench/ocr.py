"""What reading printed words buys, and what it costs (issue #12), in one command:

    .venv/bin/python bench/ocr.py [--write]

1. Grocery photo → product: all 296 in-store photos against the 81 products, Recall@1/@5 with query-photo reading
   off (today's visual ranking) and on (visual + trigram match of the photo's words, search.ranking.printed), packages and
   produce apart. The fusion weight and match floor are chosen on the tuning half of the photos (even rows of
   photo_queries.csv) and reported on the held-out half (odd rows) and on all photos.
2. Grocery photo + typed text: each photo with its product's coarse type ("Milk", "Juice") typed beside it, the
   photo's printed words in the fusion (with the weight chosen in 1) vs without reading, split the same way.
3. Grocery title → image (`image` mode: a title against the product photos), with and without the words printed
   on the photos, products split the same way (even / odd product ids) for the weight.
4. Cost: indexing the grocery catalog with --read-text on vs off, and 1,000 Myntra products (an even stride over
   the catalog, as the tests take them) with --read-text auto vs off: products/s and their ratio.

Query photos are read once through the engine's reader and cached in bench/out/ocr/photo_readings.json (by file
and reader version); the weight grid scores each setting from per-photo components (image cosines with every
product, the photo's words) with the engine's own fusion function, and the chosen setting is then run end to end
through the engine (the bench checks that both give the same ranks). Figures go to stdout and
bench/out/ocr/results.json; `--write` puts them in bench/RESULTS.md (section "ocr").
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import GROCERY, GROCERY_MAP, MYNTRA, MYNTRA_MAP  # noqa: E402

from indexer.config import load_settings  # noqa: E402
from indexer.pipeline import IndexOptions, run_index  # noqa: E402
from indexer.reading import READER_VERSION, Reading, TextLine, TextReader, load_reader  # noqa: E402
from search.engine import SearchEngine  # noqa: E402
from search.query import Query  # noqa: E402

log = logging.getLogger("bench.ocr")
OUT = ROOT / "bench" / "out" / "ocr"
WEIGHTS = (0.25, 0.5, 1.0, 2.0)
MINS = (0.2, 0.3, 0.4)
TITLE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


class CachedReader(TextReader):
    """The process's reader, remembering each photo's reading by file (set `current` before each search)."""

    def __init__(self, path: Path) -> None:
        base = load_reader()
        super().__init__(base.engine, base.version)
        self.path = path
        self.cache: dict = json.loads(path.read_text()) if path.is_file() else {}
        self.current = ""
        self.seconds: list[float] = []

    def read_image(self, image: Image.Image, *, turn: bool = True) -> Reading:
        key = f"{READER_VERSION}|{self.current}|{turn}"
        if key not in self.cache:
            reading = super().read_image(image, turn=turn)
            self.seconds.append(reading.seconds)
            self.cache[key] = {"outcome": reading.outcome, "lines": [line.to_dict() for line in reading.lines],
                               "seconds": reading.seconds}
        c = self.cache[key]
        return Reading(c["outcome"], tuple(TextLine.from_dict(d) for d in c["lines"]), seconds=c["seconds"])

    def save(self) -> None:
        self.path.write_text(json.dumps(self.cache))


def _index(home: Path, catalog: Path, mapping: list[str], read_text: str, images_root: Path | None = None) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    settings = load_settings(home=home, read_text=read_text)
    started = time.perf_counter()
    summary = run_index(settings, IndexOptions(catalog=catalog, images_root=images_root, mapping=mapping,
                                               progress=False))
    seconds = time.perf_counter() - started
    return {"read_text": read_text, "decision": summary.reading, "texts": summary.texts,
            "products": summary.indexed, "seconds": round(seconds, 1),
            "products_per_s": round(summary.indexed / seconds, 2)}


def _photos() -> list[dict]:
    with open(GROCERY / "photo_queries.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        top = {r["product_id"]: r["top_category"] for r in csv.DictReader(fh)}
    for i, r in enumerate(rows):
        r["split"] = "tuning" if i % 2 == 0 else "held-out"
        r["kind"] = "packages" if top[r["relevant_product_id"]] == "Packages" else "produce"
    return rows


def _photo_ranks(engine: SearchEngine, reader: CachedReader, photos: list[dict],
                 texts: dict[str, str] | None = None) -> dict[str, int | None]:
    """Rank (1-based) of the relevant product for each photo (typed beside it: `texts[query_id]`, if given); None
    when it is not returned."""
    ranks = {}
    for p in photos:
        reader.current = p["query_image_path"]
        with Image.open(GROCERY / p["query_image_path"]) as im:
            image = im.convert("RGB")
        text = (texts or {}).get(p["query_id"], "")
        hits = engine.search(Query(image=image, text=text, k=20, collapse=False)).hits
        ids = [h.product.id for h in hits]
        ranks[p["query_id"]] = ids.index(p["relevant_product_id"]) + 1 if p["relevant_product_id"] in ids else None
    return ranks


def _recall(ranks: dict, ids: list[str], k: int) -> float:
    return round(sum(1 for i in ids if ranks[i] is not None and ranks[i] <= k) / max(1, len(ids)), 3)


def _groups(photos: list[dict], split: str | None = None) -> dict[str, list[str]]:
    chosen = [p for p in photos if split is None or p["split"] == split]
    return {"all": [p["query_id"] for p in chosen],
            "packages": [p["query_id"] for p in chosen if p["kind"] == "packages"],
            "produce": [p["query_id"] for p in chosen if p["kind"] == "produce"]}


def _table(ranks: dict, photos: list[dict], split: str | None) -> dict:
    return {g: {"n": len(ids), "recall@1": _recall(ranks, ids, 1), "recall@5": _recall(ranks, ids, 5)}
            for g, ids in _groups(photos, split).items()}


def _components(engine: SearchEngine, reader: CachedReader, photos: list[dict]) -> dict[str, tuple[dict, str]]:
    """Per photo: its image cosine with every product (key → cosine) and the words read on it, computed as the
    engine computes them, so the weight grid scores each setting with search.ranking.printed.fuse_printed directly."""
    from indexer.reading.words import terms

    state = engine.state()
    keys = state.table.keys
    matrix = state.version.index(engine.config.image_kind).reconstruct_batch(keys)
    out = {}
    for p in photos:
        reader.current = p["query_image_path"]
        with Image.open(GROCERY / p["query_image_path"]) as im:
            image = im.convert("RGB")
        cosines = matrix @ engine.encoder().encode_images([image])[0]
        reading = reader.read_image(image, turn=False)
        out[p["query_id"]] = ({int(k): float(c) for k, c in zip(keys, cosines)},
                              " ".join(w for line in reading.lines for w in terms(line.text)))
    return out


def _grid_ranks(engine: SearchEngine, components: dict, photos: list[dict], weight: float, minimum: float,
                matcher=None) -> dict:
    """Ranks with the engine's fusion at (`weight`, `minimum`); `matcher(text)` → {key: match} replaces the
    engine's trigram match (title, brand and printed words) for the variants of `variants_bench`."""
    from search.ranking.printed import fuse_printed

    printed = engine.state().printed
    matcher = matcher or (lambda text: printed.match(text, titles=True))
    by_key = engine.state().table.by_key
    ranks = {}
    for p in photos:
        visual, text = components[p["query_id"]]
        if text:
            ranking = fuse_printed(visual, matcher(text), weight=weight, min_match=minimum,
                                   min_visual=engine.config.min_image_score)
        else:
            ranking = sorted(((k, c) for k, c in visual.items() if c >= engine.config.min_image_score),
                             key=lambda kv: -kv[1])
        ids = [by_key[k].id for k, _ in ranking[:20]]
        ranks[p["query_id"]] = ids.index(p["relevant_product_id"]) + 1 if p["relevant_product_id"] in ids else None
    return ranks


def _matchers(engine: SearchEngine) -> dict:
    """Word-matching variants tried for photo queries (item 4 of issue #12), each text → {key: match in [0, 1]}."""
    import numpy as np

    from indexer.reading.words import TrigramIndex

    state = engine.state()
    printed, table = state.printed, state.table
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        store_title = {r["product_id"]: r["store_title"] for r in csv.DictReader(fh)}
    lines = [" ".join(printed.lines.get(p.key, ())) for p in table.products]
    with_store = TrigramIndex([" ".join(filter(None, (p.title, p.brand, store_title.get(p.id, ""), text)))
                               for p, text in zip(table.products, lines)])
    lexical = state.version.lexical()

    def as_dict(scores: np.ndarray) -> dict[int, float]:
        return {int(table.keys[i]): float(scores[i]) for i in np.flatnonzero(scores > 0)}

    def bm25(text: str) -> dict[int, float]:
        hits = lexical.search(text, k=len(table))
        top = max((s for _, s in hits), default=1.0) or 1.0
        return {k: s / top for k, s in hits}

    def trigrams_and_bm25(text: str) -> dict[int, float]:
        tri, lex = printed.match(text, titles=True), bm25(text)
        return {k: 0.5 * tri.get(k, 0.0) + 0.5 * lex.get(k, 0.0) for k in set(tri) | set(lex)}

    return {"trigrams: title + brand + printed (configured)": lambda text: printed.match(text, titles=True),
            "trigrams: printed words only": lambda text: printed.match(text, titles=False),
            "trigrams: + store title": lambda text: as_dict(with_store.scores(text)),
            "BM25 over the lexical documents (max-normalised)": bm25,
            "trigrams + BM25, half each": trigrams_and_bm25}


def variants_bench(engine: SearchEngine, components: dict, photos: list[dict]) -> dict:
    """Each word-matching variant with its own (weight, floor) chosen on the tuning half; reported on both."""
    tuning = [p for p in photos if p["split"] == "tuning"]
    ids = [p["query_id"] for p in tuning]
    out = {}
    for name, matcher in _matchers(engine).items():
        best = max(((w, m) for w in WEIGHTS for m in MINS), key=lambda wm: (
            lambda r: (_recall(r, ids, 1), _recall(r, ids, 5)))(_grid_ranks(engine, components, tuning, *wm, matcher)))
        ranks = _grid_ranks(engine, components, photos, *best, matcher)
        out[name] = {"weight": best[0], "min": best[1],
                     **{s: _table(ranks, photos, s) for s in ("tuning", "held-out")}}
        log.info("variant %s: %s", name, out[name])
    return out


def photo_bench(home: Path) -> dict:
    settings = load_settings(home=home)
    reader = CachedReader(OUT / "photo_readings.json")
    photos = _photos()
    tuning = [p for p in photos if p["split"] == "tuning"]
    base = settings.search
    off_engine = SearchEngine(settings, replace(base, photo_text_weight=0.0), text_reader=reader)
    off = _photo_ranks(off_engine, reader, photos)
    components = _components(off_engine, reader, photos)
    reader.save()
    ids = [p["query_id"] for p in tuning]
    grid = []
    for w in WEIGHTS:
        for m in MINS:
            ranks = _grid_ranks(off_engine, components, tuning, w, m)
            grid.append({"weight": w, "min": m, "recall@1": _recall(ranks, ids, 1), "recall@5": _recall(ranks, ids, 5)})
            log.info("tuning w=%s min=%s: %s", w, m, grid[-1])
    best = max(grid, key=lambda g: (g["recall@1"], g["recall@5"]))
    configured = {"weight": base.photo_text_weight, "min": base.photo_text_min}
    chosen = SearchEngine(settings, replace(base, photo_text_weight=best["weight"], photo_text_min=best["min"]),
                          text_reader=reader, store=off_engine.store)
    on = _photo_ranks(chosen, reader, photos)  # end to end through the engine, with the chosen setting
    assert on == _grid_ranks(chosen, components, photos, best["weight"], best["min"]), "grid and engine disagree"
    default = _grid_ranks(chosen, components, photos, configured["weight"], configured["min"])
    with_words = [p for p in photos if components[p["query_id"]][1]]
    return {"variants": variants_bench(off_engine, components, photos), "grid_on_tuning": grid, "chosen_on_tuning": {"weight": best["weight"], "min": best["min"]},
            "configured_defaults": configured,
            "off": {s or "all": _table(off, photos, s) for s in (None, "tuning", "held-out")},
            "on": {s or "all": _table(on, photos, s) for s in (None, "tuning", "held-out")},
            "on_with_configured_defaults": {s or "all": _table(default, photos, s) for s in (None, "held-out")},
            "photos_with_words": {"all": len(with_words),
                                  "packages": sum(p["kind"] == "packages" for p in with_words)},
            "top1_lost_by_reading": sum(1 for i in off if off[i] == 1 and on[i] != 1),
            "top1_gained_by_reading": sum(1 for i in off if off[i] != 1 and on[i] == 1),
            "photo_read_s_p50": round(sorted(reader.seconds)[len(reader.seconds) // 2], 3) if reader.seconds else None}


def photo_text_bench(home: Path, weight: float, minimum: float) -> dict:
    """Photo + typed text: every photo with its product's coarse type typed beside it, with the photo's words in
    the fusion (`weight`, `minimum`: chosen for photos alone) and without reading (photo_text_weight 0)."""
    settings = load_settings(home=home)
    reader = CachedReader(OUT / "photo_readings.json")
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        coarse = {r["product_id"]: r["coarse_class"] for r in csv.DictReader(fh)}
    photos = _photos()
    texts = {p["query_id"]: coarse[p["relevant_product_id"]] for p in photos}
    ranks, store = {}, None
    for name, w in (("off", 0.0), ("on", weight)):
        engine = SearchEngine(settings, replace(settings.search, photo_text_weight=w, photo_text_min=minimum),
                              text_reader=reader, store=store)
        store = engine.store
        ranks[name] = _photo_ranks(engine, reader, photos, texts)
    off, on = ranks["off"], ranks["on"]
    return {"typed": "coarse_class", "weight": weight, "min": minimum,
            **{name: {s or "all": _table(r, photos, s) for s in (None, "tuning", "held-out")}
               for name, r in ranks.items()},
            "top1_lost_by_reading": sum(1 for i in off if off[i] == 1 and on[i] != 1),
            "top1_gained_by_reading": sum(1 for i in off if off[i] != 1 and on[i] == 1)}


def words_bench(home: Path) -> dict:
    """Tolerance to misreads: the words read on each in-store photo (cached readings) as a query against the
    products, by BM25 over the lexical documents (plain words, with the printed words) vs by character trigrams
    over title + brand + printed words (search.ranking.printed). No visual part: this isolates the word matching."""
    from indexer.reading.words import terms

    settings = load_settings(home=home)
    engine = SearchEngine(settings)
    state = engine.state()
    printed = state.printed
    cache = json.loads((OUT / "photo_readings.json").read_text())
    ranks: dict[str, dict[str, int | None]] = {"bm25_plain_words": {}, "trigrams": {}}
    photos = [p for p in _photos() if p["kind"] == "packages"]
    used = []
    for p in photos:
        lines = cache[f"{READER_VERSION}|{p['query_image_path']}|False"]["lines"]
        text = " ".join(w for line in lines for w in terms(line["text"]))
        if not text:
            continue
        used.append(p["query_id"])
        bm25 = [state.table.by_key[k].id for k, _ in state.version.lexical().search(text, k=5)]
        match = printed.match(text, titles=True)
        tri = [state.table.by_key[k].id for k, _ in sorted(match.items(), key=lambda kv: -kv[1])[:5]]
        for name, ids in (("bm25_plain_words", bm25), ("trigrams", tri)):
            ranks[name][p["query_id"]] = (ids.index(p["relevant_product_id"]) + 1
                                          if p["relevant_product_id"] in ids else None)
    return {"package_photos": len(photos), "with_words": len(used),
            **{name: {"recall@1": _recall(r, used, 1), "recall@5": _recall(r, used, 5)} for name, r in ranks.items()}}


def title_bench(home: Path) -> dict:
    settings = load_settings(home=home)
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        products = list(csv.DictReader(fh))
    out = {}
    store = None
    for w in TITLE_WEIGHTS:
        engine = SearchEngine(settings, replace(settings.search, image_text_weight=w), store=store)
        store = engine.store
        ranks = {}
        for p in products:
            ids = [h.product.id for h in engine.search(Query(text=p["title"], mode="image", k=10,
                                                             collapse=False)).hits]
            ranks[p["product_id"]] = ids.index(p["product_id"]) + 1 if p["product_id"] in ids else None
        row = {}
        for split, parity in (("tuning", 0), ("held-out", 1), ("all", None)):
            ids = [p["product_id"] for p in products if parity is None or int(p["product_id"]) % 2 == parity]
            row[split] = {"n": len(ids), "recall@1": _recall(ranks, ids, 1), "recall@10": _recall(ranks, ids, 10)}
        out[str(w)] = row
        log.info("title -> image w=%s: %s", w, row["all"])
    best = max(TITLE_WEIGHTS, key=lambda w: (out[str(w)]["tuning"]["recall@1"], out[str(w)]["tuning"]["recall@10"]))
    return {"by_weight": out, "chosen_on_tuning": best}


def myntra_subset(n: int) -> Path:
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        with_photo = [row for row in reader if row["image_hr"]]
    rows = with_photo[:: len(with_photo) // n][:n]
    path = OUT / f"myntra-{n}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--myntra-n", type=int, default=1000)
    parser.add_argument("--write", action="store_true", help="update the ocr section of bench/RESULTS.md")
    parser.add_argument("--words-only", action="store_true",
                        help="only the word-matching comparison, on the homes and readings of an earlier run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.words_only:  # added to the results of the last full run
        results = json.loads((OUT / "results.json").read_text())
        results["words_only"] = words_bench(OUT / "grocery-on")
        (OUT / "results.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(results["words_only"], indent=1))
        if args.write:
            write_results(results)
        return
    results: dict = {"reader": READER_VERSION}
    catalog = GROCERY / "products.csv"
    results["grocery_index_off"] = _index(OUT / "grocery-off", catalog, GROCERY_MAP, "off")
    results["grocery_index_on"] = _index(OUT / "grocery-on", catalog, GROCERY_MAP, "on")
    results["photo"] = photo_bench(OUT / "grocery-on")
    results["words_only"] = words_bench(OUT / "grocery-on")
    chosen = results["photo"]["chosen_on_tuning"]
    results["photo_text"] = photo_text_bench(OUT / "grocery-on", chosen["weight"], chosen["min"])
    results["title_to_image"] = title_bench(OUT / "grocery-on")
    subset = myntra_subset(args.myntra_n)
    results["myntra_index_off"] = _index(OUT / "myntra-off", subset, MYNTRA_MAP, "off", MYNTRA)
    results["myntra_index_auto"] = _index(OUT / "myntra-auto", subset, MYNTRA_MAP, "auto", MYNTRA)
    results["myntra_auto_vs_off"] = round(results["myntra_index_auto"]["products_per_s"]
                                          / results["myntra_index_off"]["products_per_s"], 3)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    if args.write:
        write_results(results)


def _off_on_rows(label: str, figures: dict) -> list[str]:
    """Markdown rows of R@1/R@5 with reading off and on, per split and photo group."""
    rows = [f"| {label} | n | R@1 off | R@1 on | R@5 off | R@5 on |", "| --- | --- | --- | --- | --- | --- |"]
    for split in ("all", "tuning", "held-out"):
        for group in ("all", "packages", "produce"):
            off, on = figures["off"][split][group], figures["on"][split][group]
            rows.append(f"| {split} / {group} | {off['n']} | {off['recall@1']} | {on['recall@1']} | "
                        f"{off['recall@5']} | {on['recall@5']} |")
    return rows


def write_results(results: dict) -> None:
    """Replace (or append) the `## ocr` section of bench/RESULTS.md with the figures' tables."""
    path = ROOT / "bench" / "RESULTS.md"
    photo, title = results["photo"], results["title_to_image"]
    n_myntra = results["myntra_index_off"]["products"]
    lines = ["## ocr", "", f"`.venv/bin/python bench/ocr.py --myntra-n {n_myntra} --write`"
             f" (raw figures: bench/out/ocr/results.json; reader `{results['reader']}`).", "",
             f"Photo → product, 296 in-store grocery photos vs 81 products. Fusion chosen on the tuning half: weight "
             f"{photo['chosen_on_tuning']['weight']}, match floor {photo['chosen_on_tuning']['min']}. "
             f"{photo['photos_with_words']['all']} photos have legible words ({photo['photos_with_words']['packages']}"
             f" of the 100 package photos); reading gains the top hit on {photo['top1_gained_by_reading']} photos and "
             f"loses it on {photo['top1_lost_by_reading']}.", "", *_off_on_rows("photos", photo)]
    if "photo_text" in results:
        pt = results["photo_text"]
        lines += ["", f"Photo + typed text: each photo with its product's coarse type typed beside it (\"Milk\", "
                  f"\"Juice\"), the photo's words in the fusion (weight {pt['weight']}, floor {pt['min']}, as chosen "
                  f"above) vs without reading; reading gains the top hit on {pt['top1_gained_by_reading']} photos and "
                  f"loses it on {pt['top1_lost_by_reading']}.", "", *_off_on_rows("photo + text", pt)]
    if "variants" in photo:
        lines += ["", "Word matching for photo queries, variants tried (each with its own weight and floor chosen on "
                  "the tuning half; R@1 on all photos / packages):", "",
                  "| variant | weight, floor | tuning R@1 | tuning packages R@1 | held-out R@1 |"
                  " held-out packages R@1 | held-out packages R@5 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in photo["variants"].items():
            t, h = v["tuning"], v["held-out"]
            lines.append(f"| {name} | {v['weight']}, {v['min']} | {t['all']['recall@1']} | "
                         f"{t['packages']['recall@1']} | {h['all']['recall@1']} | {h['packages']['recall@1']} | "
                         f"{h['packages']['recall@5']} |")
    lines += ["", "Title → image (`image` mode), 81 grocery titles; `image_text_weight` chosen on even product ids "
              f"(tuning): {title['chosen_on_tuning']}.", "",
              "| weight | R@1 tuning | R@1 held-out | R@1 all | R@10 all |", "| --- | --- | --- | --- | --- |"]
    for w, row in title["by_weight"].items():
        lines.append(f"| {w} | {row['tuning']['recall@1']} | {row['held-out']['recall@1']} | "
                     f"{row['all']['recall@1']} | {row['all']['recall@10']} |")
    if "words_only" in results:
        wo = results["words_only"]
        lines += ["", f"Words alone ({wo['with_words']} package photos with words): BM25 over the lexical documents "
                  f"R@1 {wo['bm25_plain_words']['recall@1']} / R@5 {wo['bm25_plain_words']['recall@5']}; character "
                  f"trigrams over title + brand + printed words R@1 {wo['trigrams']['recall@1']} / R@5 "
                  f"{wo['trigrams']['recall@5']}."]
    lines += ["", "| indexing | products | seconds | products/s | read |", "| --- | --- | --- | --- | --- |"]
    for name in ("grocery_index_off", "grocery_index_on", "myntra_index_off", "myntra_index_auto"):
        r = results[name]
        lines.append(f"| {name.replace('_index_', ' --read-text ')} | {r['products']} | {r['seconds']} | "
                     f"{r['products_per_s']} | {r['decision']} {r['texts']} |")
    lines += ["", f"Myntra auto / off throughput ratio: {results['myntra_auto_vs_off']}.", ""]
    text = path.read_text()
    section = "\n".join(lines) + "\n"
    start = text.find("## ocr\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
