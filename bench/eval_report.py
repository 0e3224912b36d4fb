"""The README's evaluation table: Myntra held-out title and attribute queries, grocery photo queries and IKEA title
queries (indexed with printed-text reading off and on), every mode.

    python bench/eval_report.py [--myntra-home HOME --myntra-catalog CSV] [--sets myntra,grocery,ikea] [--update-readme]

Builds the three query sets with fixed seeds (title queries skip the products the model was trained on), runs
`shoplens eval --mode all` on each (stored as eval runs, with reports), and prints one Markdown table; with
--update-readme it replaces the table between the `eval-table` markers in README.md. Both homes are (re)indexed
first, incrementally, so the numbers are those of the installed model: grocery (81 products, under a minute) and,
unless --myntra-catalog names another catalog, the `make demo` Myntra catalog (the first --myntra-n products with
a sharp image; about 12 minutes from scratch on this loaded 2-core machine). IKEA (2,187 products, an unseen
catalog) is indexed twice, `--read-text off` and `on` (the second home a copy of the first, so only the reading is
added), to show what reading printed text does on a catalog whose products carry little of it.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"
MYNTRA = DATASETS / "myntra_fashion" / "products.csv"
GROCERY = DATASETS / "grocery_store" / "products.csv"
IKEA = DATASETS / "ikea_interior" / "products.csv"
# The options README.md documents for the two catalogs.
MYNTRA_MAP = ["image=image_hr,thumbs_60x80.zip#{thumb_60x80}", "title=title,{brand} {variant_name}",
              "category=master_category>sub_category>article_type", "colour=base_colour",
              "price=discounted_price_inr,price_inr"]
GROCERY_MAP = ["id=product_id", "image=iconic_image_path", "category=top_category>coarse_class"]
IKEA_MAP = ["id=product_id", "image=image_path", "category=category_path"]
SETS = ("myntra", "grocery", "ikea")
START, END = "<!-- eval-table:start -->", "<!-- eval-table:end -->"
COLUMNS = ("recall@1", "recall@10", "recall@50", "mrr@10", "ndcg@10")

log = logging.getLogger("eval_report")


def shoplens(home: Path, *args: str) -> None:
    """Run one CLI command in this process (the model loads once); `index` may end with 3 (rows rejected)."""
    from web.cli import cli

    argv = ["--home", str(home), *args]
    log.info("shoplens %s", " ".join(argv))
    try:
        cli.main(argv, prog_name="shoplens", standalone_mode=False)
    except SystemExit as exc:
        if exc.code and not (args[0] == "index" and exc.code == 3):
            raise SystemExit(f"`shoplens {' '.join(argv)}` failed (exit {exc.code})") from None


def maps(items: list[str]) -> list[str]:
    return [a for m in items for a in ("--map", m)]


def ensure_grocery(home: Path) -> None:
    shoplens(home, "migrate")
    shoplens(home, "index", str(GROCERY), "--no-progress", *maps(GROCERY_MAP))


def ensure_ikea(home_off: Path, home_on: Path) -> None:
    """IKEA indexed with reading off in `home_off`, and in `home_on` the same index with every image read (a copy
    of `home_off` indexed again with --read-text on: the vectors are reused, only the readings are new)."""
    shoplens(home_off, "migrate")
    shoplens(home_off, "index", str(IKEA), "--no-progress", "--read-text", "off", *maps(IKEA_MAP))
    if not home_on.is_dir():
        shutil.copytree(home_off, home_on, ignore=shutil.ignore_patterns("index.lock"))
    shoplens(home_on, "index", str(IKEA), "--no-progress", "--read-text", "on", *maps(IKEA_MAP))


def ensure_myntra(home: Path, catalog: Path | None, n: int) -> Path:
    """The Myntra catalog indexed in `home`: as given, or a demo catalog of `n` products written and indexed."""
    if catalog is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from demo_catalog import write_demo_catalog

        catalog = home / "demo" / "products.csv"
        if not catalog.is_file():
            write_demo_catalog(MYNTRA, catalog, n)
    shoplens(home, "migrate")  # then index: incremental, so a no-op unless the catalog or the installed model changed
    shoplens(home, "index", str(catalog), "--images-root", str(MYNTRA.parent), "--no-progress", *maps(MYNTRA_MAP))
    return catalog


def build_sets(out: Path, myntra: Path | None, myntra_home: Path, grocery_home: Path | None, ikea_homes: tuple | None,
               n_title: int, n_attr: int, seed: int) -> list[tuple]:
    """(label, home, queries, qrels) for the query sets of the catalogs given (None: left out)."""
    sets = []
    for kind, n in (("title", n_title), ("attribute", n_attr)) if myntra is not None else ():
        q, r = out / f"myntra-{kind}.jsonl", out / f"myntra-{kind}.qrels"
        shoplens(myntra_home, "eval", "build-queries", kind, "--catalog", str(myntra), *maps(MYNTRA_MAP),
                 "--n", str(n), "--seed", str(seed), "--queries-out", str(q), "--qrels-out", str(r))
        sets.append((f"Myntra {kind}", myntra_home, q, r))
    if grocery_home is not None:
        q, r = out / "grocery-photo.jsonl", out / "grocery-photo.qrels"
        shoplens(grocery_home, "eval", "build-queries", "photo", "--catalog", str(GROCERY), *maps(GROCERY_MAP),
                 "--photos", str(DATASETS / "grocery_store" / "photo_queries.csv"), "--queries-out", str(q),
                 "--qrels-out", str(r))
        sets.append(("grocery photo", grocery_home, q, r))
    if ikea_homes is not None:
        q, r = out / "ikea-title.jsonl", out / "ikea-title.qrels"
        shoplens(ikea_homes[0], "eval", "build-queries", "title", "--catalog", str(IKEA), *maps(IKEA_MAP),
                 "--n", str(n_title), "--seed", str(seed), "--queries-out", str(q), "--qrels-out", str(r))
        sets += [("IKEA title, reading off", ikea_homes[0], q, r), ("IKEA title, reading on", ikea_homes[1], q, r)]
    return sets


def table(results: list[tuple[str, dict]]) -> str:
    lines = ["| queries | mode | " + " | ".join(COLUMNS) + " | p50 ms | p95 ms |",
             "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- | --- |"]
    for name, data in results:
        label = f"{name} ({data['n_queries']})"
        for mode, summary in data["modes"].items():
            if summary.get("unsupported") == summary["n_queries"]:
                lines.append(f"| {label} | {mode} | " + " | ".join("n/a" for _ in COLUMNS) + " | n/a | n/a |")
                continue
            m, lat = summary["metrics"], summary["latency_ms"]
            sig = data["significance"]["p_values"].get(mode, {})
            cells = [f"{m[c]:.3f}" + ("*" if sig.get(c, 1.0) < 0.05 else "") for c in COLUMNS]
            lines.append(f"| {label} | {mode} | " + " | ".join(cells) + f" | {lat['p50']:.1f} | {lat['p95']:.1f} |")
    return "\n".join(lines)


def index_summary(home: Path) -> str:
    """'v000003: 44,441 products, model shoplens-lite' from the home's published manifest."""
    version = (home / "index" / "CURRENT").read_text().strip()
    manifest = json.loads((home / "index" / version / "manifest.json").read_text())
    return f"{manifest['count']:,} products, model `{manifest['model']}`"


def update_readme(text: str, index_note: str) -> None:
    readme = ROOT / "README.md"
    body = readme.read_text(encoding="utf-8")
    block = f"{START}\n{index_note}\n\n{text}\n{END}"
    if START in body and END in body:
        body = body[: body.index(START)] + block + body[body.index(END) + len(END):]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(body, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--myntra-home", type=Path, default=ROOT / "bench" / "out" / "eval-myntra-home")
    parser.add_argument("--myntra-catalog", type=Path, help="The Myntra catalog indexed in --myntra-home "
                        f"(e.g. {MYNTRA} for the full index); default: a demo catalog of --myntra-n products.")
    parser.add_argument("--myntra-n", type=int, default=2500)
    parser.add_argument("--grocery-home", type=Path, default=ROOT / "bench" / "out" / "eval-grocery-home")
    parser.add_argument("--ikea-home", type=Path, default=ROOT / "bench" / "out" / "eval-ikea-home",
                        help="IKEA with reading off; HOME-read holds the same index with reading on")
    parser.add_argument("--sets", default=",".join(SETS), help="catalogs to evaluate (a table of fewer is not "
                        "written to the README)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "eval")
    parser.add_argument("--n-title", type=int, default=500)
    parser.add_argument("--n-attribute", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measures", default="flops,zeroshot", help="Passed to `shoplens eval --measures`.")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = set(args.sets.split(","))
    if chosen - set(SETS):
        parser.error(f"--sets: unknown {', '.join(sorted(chosen - set(SETS)))}; use {', '.join(SETS)}")
    if args.update_readme and chosen != set(SETS):
        parser.error("--update-readme writes the whole table: leave out --sets")
    myntra = ensure_myntra(args.myntra_home, args.myntra_catalog, args.myntra_n) if "myntra" in chosen else None
    if "grocery" in chosen:
        ensure_grocery(args.grocery_home)
    ikea_homes = (args.ikea_home, args.ikea_home.with_name(args.ikea_home.name + "-read")) if "ikea" in chosen else None
    if ikea_homes is not None:
        ensure_ikea(*ikea_homes)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    measured: set[Path] = set()  # zero-shot and FLOPs depend on the index, not the queries: once per home
    for label, home, q, r in build_sets(args.out, myntra, args.myntra_home, args.grocery_home if "grocery" in chosen
                                        else None, ikea_homes, args.n_title, args.n_attribute, args.seed):
        stem = label.lower().replace(",", "").replace(" ", "-")  # "IKEA title, reading on" → ikea-title-reading-on
        out = args.out / (stem + ".json")
        shoplens(home, "eval", "--queries", str(q), "--qrels", str(r), "--mode", "all", "--baseline", "hybrid",
                 "--json", str(out), "--run-out", str(args.out / (stem + ".run.txt")),
                 "--measures", "none" if home in measured else args.measures, "--quiet", "--name", f"readme: {label}")
        measured.add(home)
        results.append((label, json.loads(out.read_text())))
    text = table(results)
    indexes = []
    if myntra is not None:
        shown = myntra.relative_to(ROOT) if myntra.is_relative_to(ROOT) else myntra.name
        indexes.append(f"Myntra index: {index_summary(args.myntra_home)} (`{shown}`)")
    if "grocery" in chosen:
        indexes.append(f"grocery index: {index_summary(args.grocery_home)}")
    if ikea_homes is not None:
        indexes.append(f"IKEA index: {index_summary(ikea_homes[0])}, reading off and on")
    note = ("; ".join(indexes) + ". `*`: differs from hybrid at p < 0.05 (paired t-test over queries); "
            f"latency per query on this 2-core machine, one torch thread; the engine caches query encodings, so "
            f"modes after the first one of a query set are timed without the text encoder. "
            f"Reports: `shoplens eval runs`, `/eval`.")
    print(note + "\n\n" + text)
    if args.update_readme:
        update_readme(text, note)


if __name__ == "__main__":
    main()
