"""Does hybrid search beat its parts? BM25 alone, each vector kind alone, and fused variants, on Myntra title and
attribute queries built from the catalog of any ShopLens home (search/evaluation/builders.py), scored with ranx.

    .venv/bin/python bench/hybrid.py --home .shoplens --catalog ../shared/datasets/myntra_fashion/products.csv

Queries come from the products the home's index holds, so it runs on a 2,000-product home or the full 44,441.
It also prints the vector score distribution of real versus nonsense queries, from which the score floor
(`min_text_score`) is set. Figures go to stdout and to bench/out/hybrid.json; bench/RESULTS.md records them.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import MYNTRA, MYNTRA_MAP  # noqa: E402

from indexer.calibration import SHOPPER_PHRASES, nonsense_queries, top1_scores  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.store import open_store  # noqa: E402
from indexer.config import SearchSettings  # noqa: E402
from search.engine import SearchEngine  # noqa: E402
from search.evaluation.builders import attribute_queries, read_catalog_rows, title_queries  # noqa: E402
from search.evaluation.metrics import mean_scores, paired_test, per_query_scores  # noqa: E402
from search.query import Query  # noqa: E402

log = logging.getLogger("bench.hybrid")
METRICS = ("ndcg@10", "recall@10", "mrr@10", "recall@50")


def systems(base: SearchSettings) -> dict[str, tuple[SearchSettings, str]]:
    """name -> (config, text mode) of every system compared."""
    out = {"lexical": (base, "lexical")}
    for kind in ("text", "fused", "image"):
        out[f"vector:{kind}"] = (base, kind)
    for kind in ("text", "fused"):
        for spec in ("rrf:60", "rrf:60:2", "blend:0.2", "blend:0.3", "blend:0.5"):
            out[f"hybrid {spec} ({kind})"] = (replace(base, hybrid=spec, hybrid_kind=kind), "hybrid")
    return out


def run_system(engine: SearchEngine, queries, mode: str, k: int) -> tuple[dict, list[float]]:
    run, latencies = {}, []
    for q in queries:
        started = time.perf_counter()
        result = engine.search(Query(text=q.text, mode=mode, k=k, collapse=False))
        latencies.append(time.perf_counter() - started)
        run[q.id] = [(h.product.id, h.score) for h in result.hits]
    return run, latencies


def score_floor_report(engine: SearchEngine, titles: list[str], n: int = 100, seed: int = 0) -> dict:
    """Top-1 cosine of real queries (titles, short shopper phrases) and of random-letter nonsense per kind, beside
    the floor the index version measured for itself (indexer.calibration)."""
    enc, version = engine.encoder(), engine.state().version
    floors = engine.status()["search"]["text_score_floors"]
    out = {}
    for kind in ("text", "fused", "image"):
        row = {}
        for name, texts in (("real", titles[:n]), ("short", list(SHOPPER_PHRASES)),
                            ("nonsense", nonsense_queries(n, seed + 1))):
            scores = top1_scores(version.index(kind), enc.encode_texts(texts))
            row[name] = {f"p{p}": round(float(np.percentile(scores, p)), 3) for p in (10, 50, 90)}
        row["floor"] = floors[kind]
        out[kind] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--catalog", type=Path, default=MYNTRA / "products.csv")
    parser.add_argument("--map", dest="mapping", action="append", default=None)
    parser.add_argument("--n", type=int, default=300, help="queries of each kind")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "hybrid.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = load_settings(home=args.home)
    store = open_store(settings.db_url)
    base = settings.search
    probe = SearchEngine(settings, base, store=store)
    indexed = {p.id for p in probe.state().table.products}
    rows = [r for r in read_catalog_rows(args.catalog, args.mapping or MYNTRA_MAP) if r["id"] in indexed]
    for r in rows:  # the category path consumed article_type; its last level is the same value
        if r.get("category"):
            r.setdefault("article_type", r["category"].split(">")[-1].strip())
    sets = {"title": title_queries(rows, args.n, args.seed), "attribute": attribute_queries(rows, args.n, args.seed)}
    print(f"home {settings.home}: {len(indexed)} products, index {probe.state().version.name} "
          f"({probe.state().version.manifest.get('model')}); "
          + ", ".join(f"{len(s.queries)} {name} queries" for name, s in sets.items()))

    report: dict = {"home": str(settings.home), "products": len(indexed), "sets": {}}
    for set_name, evalset in sets.items():
        print(f"\n{set_name} queries (n={len(evalset.queries)}), k={args.k}")
        print(f"{'system':<28}" + "".join(f"{m:>11}" for m in METRICS) + f"{'p50 ms':>9}")
        per_system = {}
        for name, (cfg, mode) in systems(base).items():
            engine = SearchEngine(settings, cfg, store=store)
            run, lat = run_system(engine, evalset.queries, mode, args.k)
            per_query = per_query_scores(evalset.qrels, run, METRICS)
            means = mean_scores(per_query)
            per_system[name] = {"means": means, "per_query": per_query, "p50_ms": 1000 * float(np.median(lat))}
            print(f"{name:<28}" + "".join(f"{means[m]:>11.4f}" for m in METRICS) + f"{per_system[name]['p50_ms']:>9.1f}")
        best_part = max(("lexical", "vector:text", "vector:fused", "vector:image"),
                        key=lambda s: per_system[s]["means"]["ndcg@10"])
        default = f"hybrid {base.hybrid} ({base.hybrid_kind})"
        if default in per_system:
            p = paired_test(per_system[best_part]["per_query"]["ndcg@10"], per_system[default]["per_query"]["ndcg@10"])
            print(f"default {default} vs best single part {best_part}: nDCG@10 "
                  f"{per_system[default]['means']['ndcg@10']:.4f} vs {per_system[best_part]['means']['ndcg@10']:.4f}"
                  f" (paired t-test p = {p:.3g})")
        report["sets"][set_name] = {name: {"means": v["means"], "p50_ms": v["p50_ms"]} for name, v in per_system.items()}

    titles = [q.text for q in sets["title"].queries]
    report["score_floor"] = score_floor_report(probe, titles)
    print("\ntop-1 cosine, titles and short shopper phrases vs nonsense (p10/p50/p90):")
    for kind, row in report["score_floor"].items():
        print(f"  {kind:<6} titles {row['real']}  short {row['short']}  nonsense {row['nonsense']}  floor {row['floor']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
