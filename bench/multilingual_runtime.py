"""e5 on its engine against e5 on ONNX Runtime (indexer.model.multilingual_runtime), in the same run, on real titles.

    .venv/bin/python bench/multilingual_runtime.py [--n 300] [--rounds 3] [--out FILE]

Per query: one real product title at a time (Myntra, IKEA, grocery and the grocery store's partly Swedish titles),
the two runtimes alternating per title so load hits both, the median over the titles per round. Per batch of
passages: 64 of the titles as passages, the engine's batched call against the fast path's one text at a time, on
one thread and on two (indexing's `encode_passages(threads=)`). And the two runtimes' vectors compared item by item
(min cosine). Queries on one thread each, as a server's worker runs them. Prints a line per measure and writes JSON with `--out`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"


def titles(n: int, seed: int = 0) -> list[str]:
    """n real titles drawn evenly from the three catalogs (and the grocery store's own titles)."""
    def column(path: Path, name: str) -> list[str]:
        with open(path, newline="", encoding="utf-8") as fh:
            return [row[name] for row in csv.DictReader(fh) if row[name].strip()]

    pools = [column(DATASETS / "myntra_fashion" / "products.csv", "title"),
             column(DATASETS / "ikea_interior" / "products.csv", "title"),
             column(DATASETS / "grocery_store" / "products.csv", "title") +
             column(DATASETS / "grocery_store" / "products.csv", "store_title")]
    rng = random.Random(seed)
    return [rng.choice(pools[i % len(pools)]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="titles timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import numpy as np

    from indexer.model.multilingual import _load_cached

    with tempfile.TemporaryDirectory() as cache:  # a fresh cache: the first load builds the graph, and is timed
        start = time.perf_counter()
        engine = _load_cached("multilingual-e5-small-q4", Path(cache), "eager")
        fast = _load_cached("multilingual-e5-small-q4", Path(cache), "auto")
        build_s = time.perf_counter() - start
        if fast.runtime != "onnx":
            sys.exit("the ONNX Runtime path was refused on this machine (see the log)")
        texts = titles(args.n)
        for text in texts[:10]:  # warm both
            engine.encode_queries([text]), fast.encode_queries([text])
        rounds = []
        for r in range(args.rounds):
            times: dict[str, list[float]] = {"engine": [], "onnx": []}
            for text in texts:
                for name, model in (("engine", engine), ("onnx", fast))[:: 1 if r % 2 == 0 else -1]:
                    t0 = time.perf_counter()
                    model.encode_queries([text])
                    times[name].append(time.perf_counter() - t0)
            rounds.append({name: round(statistics.median(v) * 1e3, 2) for name, v in times.items()})
            print(f"round {r + 1}: one title p50 engine {rounds[-1]['engine']} ms, onnx {rounds[-1]['onnx']} ms "
                  f"({rounds[-1]['onnx'] / rounds[-1]['engine']:.2f}x)", flush=True)
        cosines = (engine.encode_queries(texts) * fast.encode_queries(texts)).sum(axis=1)
        print(f"vectors: min cosine {cosines.min():.5f}, p1 {np.percentile(cosines, 1):.5f} over {len(texts)} titles")

        passages, batches = texts[:64], {}
        for threads in (1, 2):  # what indexing calls: batches of 64 on every core
            for name, model in (("engine", engine), ("onnx", fast)):
                t0 = time.perf_counter()
                model.encode_passages(passages, threads=threads)
                batches[f"{name}_{threads}_threads"] = round(time.perf_counter() - t0, 3)
            print(f"64 passages on {threads} thread(s): engine {batches[f'engine_{threads}_threads']:.2f} s, "
                  f"onnx {batches[f'onnx_{threads}_threads']:.2f} s")
        passage_cosines = (engine.encode_passages(texts) * fast.encode_passages(texts)).sum(axis=1)
        print(f"passage vectors: min cosine {passage_cosines.min():.5f}")
    report = {"titles": len(texts), "rounds_p50_ms": rounds, "min_cosine": round(float(cosines.min()), 6),
              "passage_min_cosine": round(float(passage_cosines.min()), 6), "passages64_s": batches,
              "first_load_with_build_s": round(build_s, 1), "load_average_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
