"""What `shoplens adapt` buys on catalogs the installed model never saw (issue #13), in one command:

    .venv/bin/python bench/adapt.py [--write] [--only ikea,grocery,myntra]

Every figure comes from real homes built with the real CLI (`shoplens index`, then `shoplens adapt --json`) and
queried through the real engine, before (the installed model's version) and after adaptation:
1. IKEA (2,187 products): `adapt`'s own held-out metrics (10% of the products, seed 0, never trained on; candidates
   = the held-out products), and the held-out titles as `image`-mode queries against the whole catalog.
2. Grocery (81 products, all adapted on: `--holdout 0`): the 296 in-store photos (never used by adaptation) →
   product, Recall@1/@5, with reading (the engine's default for this catalog) and without; packages and produce
   apart, and the odd rows alone (the photo-reading weights were chosen on the even ones).
3. Myntra: a home of products from `train-model`'s held-out split (never trained on by the installed heads either),
   adapted on itself: held-out title → image MRR@10. Forgetting: the IKEA-adapted heads scored on Myntra held-out
   products against the installed heads (tower features, indexer.model.training.quality style).
Cost: the wall time of each `shoplens adapt` (features are cached by image sha256 after the first run).
Results go to stdout and bench/out/adapt/results.json; `--write` puts them in bench/RESULTS.md (section "adapt").
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import GROCERY, GROCERY_MAP, IKEA, IKEA_MAP, MYNTRA, MYNTRA_MAP  # noqa: E402

log = logging.getLogger("bench.adapt")
OUT = ROOT / "bench" / "out" / "adapt"
SHOPLENS = [sys.executable, "-m", "web.cli"]


def shoplens(home: Path, *args: str) -> str:
    """Run the real CLI on `home`; returns stdout (raises with stderr on failure)."""
    done = subprocess.run([*SHOPLENS, "--home", str(home), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode not in (0, 3):
        raise RuntimeError(f"shoplens {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def fresh_home(name: str, catalog: Path, mapping: list[str], *extra: str) -> Path:
    home = OUT / name
    shutil.rmtree(home, ignore_errors=True)
    shoplens(home, "index", str(catalog), *sum((["--map", m] for m in mapping), []), "--no-progress", *extra)
    return home


def adapt(home: Path, *extra: str) -> dict:
    started = time.perf_counter()
    summary = json.loads(shoplens(home, "adapt", "--json", "--no-progress", *extra))
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return summary


def _engine(home: Path):
    from indexer.config import load_settings
    from search.engine import SearchEngine

    return SearchEngine(load_settings(home=home))


def _rank(hits: list[str], relevant: set[str]) -> int | None:
    return next((r for r, pid in enumerate(hits, 1) if pid in relevant), None)


def _recalls(ranks: list[int | None]) -> dict:
    n = max(1, len(ranks))
    return {f"recall@{k}": round(sum(1 for r in ranks if r and r <= k) / n, 3) for k in (1, 5, 10)} | \
        {"mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / n, 3), "n": len(ranks)}


def title_queries(home: Path, ids: list[str], titles: dict[str, str], relevant: dict[str, set[str]]) -> dict:
    """Held-out titles as `image`-mode queries (words → product photos) against the whole catalog."""
    from search.query import Query

    engine = _engine(home)
    ranks = [_rank([h.product.id for h in engine.search(Query(text=titles[pid], mode="image", k=10,
                                                              collapse=False)).hits], relevant[pid]) for pid in ids]
    return _recalls(ranks)


def photo_queries(home: Path, read: bool) -> dict:
    """The 296 grocery in-store photos → product through the engine: all, packages and produce apart, and the odd
    rows alone (the photo-reading weights were chosen on the even ones, bench/ocr.py)."""
    from PIL import Image

    from indexer.config import load_settings
    from search.engine import SearchEngine
    from search.query import Query

    engine = SearchEngine(load_settings(home=home, search={} if read else {"photo_text_weight": 0.0}))
    with (GROCERY / "photo_queries.csv").open(encoding="utf-8") as f:
        photos = list(csv.DictReader(f))
    with (GROCERY / "products.csv").open(encoding="utf-8") as f:
        top = {r["product_id"]: r["top_category"] for r in csv.DictReader(f)}
    ranks: dict[str, list] = {"all": [], "packages": [], "produce": [], "odd rows": []}
    for row, q in enumerate(photos):
        with Image.open(GROCERY / q["query_image_path"]) as im:
            hits = engine.search(Query(image=im.convert("RGB"), k=10, collapse=False)).hits
        r = _rank([h.product.id for h in hits], {q["relevant_product_id"]})
        ranks["all"].append(r)
        ranks["packages" if top[q["relevant_product_id"]] == "Packages" else "produce"].append(r)
        if row % 2:
            ranks["odd rows"].append(r)
    return {k: _recalls(v) for k, v in ranks.items()}


def _heldout_ids(home: Path, holdout: float = 0.1) -> list[str]:
    """The products `shoplens adapt --holdout` holds out (the same deterministic split, computed beforehand)."""
    from indexer.adaptation import adapt_recipe, catalog_items, split_products
    from indexer.config import load_settings
    from indexer.store import open_store

    settings = load_settings(home=home)
    items = catalog_items(open_store(settings.db_url), settings.max_image_pixels, settings.max_image_bytes)
    held = split_products([i.id for i in items], holdout=holdout, exclude=frozenset(), val=adapt_recipe(0).val,
                          seed=0)[2]
    return [items[i].id for i in held]


def _home(name: str, catalog: Path, mapping: list[str], reuse: bool, *extra: str) -> Path:
    """The bench's home for a catalog: built fresh, or with `reuse` the one a previous run indexed."""
    home = OUT / name
    if reuse and (home / "index" / "CURRENT").is_file():
        shoplens(home, "adapt", "--reset")  # "before" is the installed model
        return home
    return fresh_home(name, catalog, mapping, *extra)


def _measured(home: Path, measure, *adapt_args: str) -> tuple[dict, dict]:
    """(adapt summary, {"before", "after"}): `measure(home)` on the published version, then adapt and again."""
    before = measure(home)
    summary = adapt(home, *adapt_args)
    return summary, {"before": before, "after": measure(home)}


def ikea_bench(reuse: bool) -> dict:
    home = _home("ikea-home", IKEA / "products.csv", IKEA_MAP, reuse)
    with (IKEA / "products.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with (IKEA / "product_attributes.csv").open(encoding="utf-8") as f:
        md5 = {r["product_id"]: r["source_image_md5"] for r in csv.DictReader(f)}
    titles = {r["product_id"]: r["title"] for r in rows}
    same_image: dict[str, set[str]] = {}
    for pid, digest in md5.items():
        same_image.setdefault(digest, set()).add(pid)
    relevant = {pid: same_image[md5[pid]] | {q for q, t in titles.items() if t.lower() == titles[pid].lower()}
                for pid in titles}
    held = _heldout_ids(home)
    summary, whole = _measured(home, lambda h: title_queries(h, held, titles, relevant))
    return {"adapt": summary, "whole_catalog_title_to_image": whole, "home": str(home)}


def grocery_bench(reuse: bool) -> dict:
    home = _home("grocery-home", GROCERY / "products.csv", GROCERY_MAP, reuse)
    before_no_read = photo_queries(home, False)
    # --holdout 0: the test set is the in-store photos, which adaptation never sees
    summary, read = _measured(home, lambda h: photo_queries(h, True), "--holdout", "0")
    return {"adapt": summary, "photos": {"read": read, "no_read": {"before": before_no_read,
                                                                     "after": photo_queries(home, False)}},
            "home": str(home)}


def myntra_subset(n: int) -> Path:
    """`n` products of train-model's held-out split (image_hr ones), never trained on by the installed heads."""
    from indexer.model.training.data import read_pairs, split

    pairs = read_pairs(MYNTRA / "products.csv", ["image_hr", "thumb_60x80:thumbs_60x80.zip"],
                       holdout_column="image_hr")
    held = {pairs[i].id for i in split(pairs)[2]}
    with (MYNTRA / "products.csv").open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r["id"] in held]
        fields = reader.fieldnames
    step = max(1, len(rows) // n)
    path = OUT / f"myntra-heldout-{n}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[::step][:n])
    return path


def myntra_bench(n: int, reuse: bool) -> dict:
    catalog = myntra_subset(n)
    home = _home("myntra-home", catalog, MYNTRA_MAP, reuse, "--images-root", str(MYNTRA))
    summary = adapt(home)
    return {"adapt": summary, "home": str(home)}


def forgetting(ikea_model: str, n: int) -> dict:
    """The IKEA-adapted heads and the installed heads on the same Myntra held-out products (tower features)."""
    import numpy as np

    from indexer.config import load_settings
    from indexer.model.adapted import folder_of, read_model_file
    from indexer.model.lite import build_lite
    from indexer.model.training.data import read_pairs, split
    from indexer.model.training.features import embed_features, image_features, text_features
    from indexer.model.training.metrics import retrieval_metrics

    cache = load_settings().model_cache_dir
    pairs = read_pairs(MYNTRA / "products.csv", ["image_hr", "thumb_60x80:thumbs_60x80.zip"],
                       holdout_column="image_hr")
    test = [pairs[i] for i in split(pairs)[2]]
    test = test[::max(1, len(test) // n)][:n]
    folder = folder_of(ikea_model)
    out = {}
    for label, heads in (("installed", None), ("ikea-adapted", folder / read_model_file(folder)["heads"])):
        model, tokenizer, preprocess, _ = build_lite("shoplens-lite", cache, heads_path=heads)
        img = image_features(model, preprocess, [p.image for p in test], cache, desc="myntra held-out images")
        titles = sorted({p.title for p in test})
        txt = text_features(model, tokenizer, titles, cache, desc="myntra held-out titles")
        relevant = np.array([[p.title == t for p in test] for t in titles])
        scores = embed_features(model, "text", txt) @ embed_features(model, "image", img).T
        out[label] = {k: round(v, 3) for k, v in retrieval_metrics(scores, relevant).items()}
    return {"n_products": len(test), **out}


def write_results(results: dict) -> None:
    """Replace the "adapt" section of bench/RESULTS.md."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    begin, end = "<!-- adapt:begin -->", "<!-- adapt:end -->"
    body = [begin, "## adapt (`.venv/bin/python bench/adapt.py --write`)", "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC, load average {os.getloadavg()[0]:.1f}.", ""]

    def row(name: str, m: dict) -> str:
        return f"| {name} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['mrr@10']:.3f} |"

    head = ["| what | R@1 | R@5 | R@10 | MRR@10 |", "| --- | --- | --- | --- | --- |"]
    for cat in ("ikea", "grocery", "myntra"):
        if cat not in results:
            continue
        r = results[cat]
        s = r["adapt"]
        body += [f"### {cat}: adapted on {s['trained_on']} products, {s['held_out']} held out, "
                 f"`shoplens adapt` {s['wall_s']} s", ""] + head
        for task in s["before"]:
            body += [row(f"{task}, held out, before", s["before"][task]), row(f"{task}, held out, after",
                                                                              s["after"][task])]
        if "whole_catalog_title_to_image" in r:
            w = r["whole_catalog_title_to_image"]
            body += [row("held-out titles → whole catalog (engine, image mode), before", w["before"]),
                     row("held-out titles → whole catalog (engine, image mode), after", w["after"])]
        for label, runs in r.get("photos", {}).items():
            for part in ("all", "packages", "produce", "odd rows"):
                body += [row(f"in-store photos ({part}, {label}), before", runs["before"][part]),
                         row(f"in-store photos ({part}, {label}), after", runs["after"][part])]
        body.append("")
    if "forgetting" in results:
        f = results["forgetting"]
        body += [f"### forgetting: Myntra held-out titles → images ({f['n_products']} products)", ""] + head
        body += [row("installed heads", f["installed"]), row("IKEA-adapted heads", f["ikea-adapted"]), ""]
    body.append(end)
    if begin in text:
        pre, rest = text.split(begin, 1)
        text = pre + "\n".join(body) + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + "\n".join(body) + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="ikea,grocery,myntra,forgetting")
    parser.add_argument("--myntra-n", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="Keep the homes a previous run indexed (and adapted).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for part in args.only.split(","):
        if part == "ikea":
            results["ikea"] = ikea_bench(args.reuse)
        elif part == "grocery":
            results["grocery"] = grocery_bench(args.reuse)
        elif part == "myntra":
            results["myntra"] = myntra_bench(args.myntra_n, args.reuse)
        elif part == "forgetting":
            results["forgetting"] = forgetting(results["ikea"]["adapt"]["model"], args.myntra_n)
        path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        log.info("%s: %s", part, json.dumps(results[part], ensure_ascii=False)[:2000])
    if args.write:
        write_results(results)


if __name__ == "__main__":
    main()
