"""Query latency and throughput through HTTP, against `shoplens serve` on any home.

    .venv/bin/python bench/query.py --home bench/out/full-home            # starts the server itself
    .venv/bin/python bench/query.py --url http://127.0.0.1:8000 --home H  # or measures a running one

Phases: (1) sequential text queries (p50/p95), (2) sequential photo queries (p50/p95), each with the share of
every server stage (encode, vector search, lexical, metadata, render; from the responses' timings) and of HTTP
and serialisation around them, plus the same text queries answered in this process by the engine as the
baseline (ratio HTTP / in-process); (3) N concurrent clients for D seconds: throughput, errors, p50/p95.
Targets (issue 4, full Myntra index on the 2-core machine): text p50 <= 25 ms, p95 <= 60 ms; photo p50 <= 80 ms;
issue 18 (`--queries titles`, long real titles): text p50 <= 15 ms, photo p50 <= 40 ms.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.query")
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra_fashion"
GROCERY = ROOT.parent / "shared" / "datasets" / "grocery_store"
STAGES = ("encode", "read_text", "printed_match", "vector_search", "lexical", "metadata", "render")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("shoplens")), "--home", home, "serve", "--port", str(port),
           "--workers", str(workers), "--rate-limit", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(Path(home) / "bench-serve.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {home}/bench-serve.log")
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(1)
    proc.terminate()
    raise SystemExit("server did not become ready in 600 s")


QUERY_SETS = ("mixed", "titles")


def text_queries(home: str, n: int, seed: int, kind: str = "mixed") -> list[str]:
    """Real shopper-like queries from the indexed catalog: titles and 'colour type for gender' phrases (mixed), or
    the products' whole titles alone (titles: the long queries issue #18's goal is set on)."""
    from indexer.config import load_settings
    from indexer.store import open_store
    from search.products import ProductTable

    table = ProductTable.load(open_store(load_settings(home=home).db_url))
    rng = random.Random(seed)
    products = list(table.products)
    picked = rng.sample(products, min(n, len(products)))
    out: dict[str, None] = {}  # distinct queries only: a repeated query would hit the server's encoding cache
    for i, p in enumerate(picked):
        if kind == "titles" or i % 2 == 0 or not (p.colour and p.category_leaf):
            out[p.title] = None
        else:
            out[" ".join(filter(None, [p.colour, p.category_leaf, f"for {p.gender}" if p.gender else ""])).lower()] = None
    return list(out)


PHOTO_SOURCES = ("mixed", "myntra", "packages")


def photo_files(n: int, seed: int, source: str = "mixed") -> list[Path]:
    """`n` query photos: Myntra product images and grocery in-store photos (mixed), Myntra only, or only the
    in-store photos of grocery packages (cartons with printed words: what a query photo that is read costs)."""
    myntra = sorted((MYNTRA / "images_hr").glob("*.jpg"))[:2000]
    grocery = sorted((GROCERY / "photos").rglob("*.jpg"))[:200]
    files = {"mixed": myntra + grocery, "myntra": myntra,
             "packages": sorted((GROCERY / "photos" / "val" / "Packages").rglob("*.jpg"))}[source]
    return random.Random(seed).sample(files, min(n, len(files)))


def timed_text(session: requests.Session, url: str, q: str) -> tuple[float, dict]:
    started = time.perf_counter()
    r = session.get(url + "/api/v1/search", params={"q": q, "k": 10}, timeout=30)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.json()


def timed_photo(session: requests.Session, url: str, data: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    r = session.post(url + "/api/v1/search", files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "10"},
                     timeout=30)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, r.json()


def summarise(latencies: list[float], bodies: list[dict]) -> dict:
    ms = np.array(latencies) * 1000
    total = float(ms.sum())
    stage_ms = {s: float(sum(b.get("timings_ms", {}).get(s, 0.0) for b in bodies)) for s in STAGES}
    shares = {s: round(v / total, 4) for s, v in stage_ms.items()}
    shares["http_and_serialisation"] = round(1 - sum(shares.values()), 4)
    return {"n": len(latencies), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "mean_ms": round(float(ms.mean()), 2),
            "share": shares}


def in_process_baseline(home: str, warm: list[str], queries: list[str]) -> dict:
    """The engine alone, in this process, on the same text queries: what HTTP and the server add is the ratio. Each
    query is also answered with the multilingual encode run after the main one rather than beside it
    (`encode_beside` off), alternating which goes first, the encoding caches emptied before each answer."""
    import faiss
    import torch

    from indexer.config import load_settings
    from search.engine import SearchEngine
    from search.query import Query
    from search.ranking.text import clear_query_caches

    torch.set_num_threads(1)  # as one server worker of two runs on two cores
    faiss.omp_set_num_threads(1)
    settings = load_settings(home=home)
    engines = {"beside": SearchEngine(settings), "one_after_the_other": SearchEngine(
        settings, settings.search.updated({"encode_beside": False}))}
    for engine in engines.values():
        engine.warm_up()
        for q in warm:
            engine.search(Query(text=q, k=10))
    lat: dict[str, list[float]] = {name: [] for name in engines}
    for i, q in enumerate(queries):
        for name in (list(engines) if i % 2 == 0 else list(engines)[::-1]):
            clear_query_caches()
            started = time.perf_counter()
            engines[name].search(Query(text=q, k=10))
            lat[name].append(time.perf_counter() - started)
    out = {}
    for name, values in lat.items():
        ms = np.array(values) * 1000
        out[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}
    return {**out["beside"], "one_after_the_other": out["one_after_the_other"],
            "beside_over_one_after_the_other_p50": round(out["beside"]["p50_ms"] /
                                                         out["one_after_the_other"]["p50_ms"], 3)}


def load_test(url: str, queries: list[str], photos: list[bytes], clients: int, seconds: float,
              photo_share: float) -> dict:
    """`clients` threads for `seconds`, each taking the next unused query of the pool (cycling when it runs out)."""
    stop = time.time() + seconds
    lock = threading.Lock()
    pool = itertools.cycle(queries)
    latencies: list[float] = []
    errors: list[str] = []

    def client(i: int) -> None:
        rng = random.Random(i)
        session = requests.Session()
        while time.time() < stop:
            try:
                if photos and rng.random() < photo_share:
                    elapsed, _ = timed_photo(session, url, rng.choice(photos))
                else:
                    with lock:
                        q = next(pool)
                    elapsed, _ = timed_text(session, url, q)
                with lock:
                    latencies.append(elapsed)
            except Exception as exc:  # every failure counts as an error of the run
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([0.0])
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies), "errors": len(errors),
            "error_samples": errors[:5], "throughput_rps": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="the ShopLens home the server reads (queries come from it)")
    parser.add_argument("--url", help="a running server; default: start `shoplens serve` on a free port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--text", type=int, default=200, help="sequential text queries")
    parser.add_argument("--photos", type=int, default=50, help="sequential photo queries")
    parser.add_argument("--load-pool", type=int, default=3000, help="distinct text queries for the load phase")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--photo-source", choices=PHOTO_SOURCES, default="mixed")
    parser.add_argument("--photo-share", type=float, default=0.1, help="share of photo queries under load")
    parser.add_argument("--queries", choices=QUERY_SETS, default="mixed",
                        help="text queries: titles and attribute phrases, or whole titles only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "query.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    pool = text_queries(args.home, 20 + args.text + args.load_pool, args.seed, args.queries)
    warm, queries, load_queries = pool[:20], pool[20:20 + args.text], pool[20 + args.text:] or pool
    photos = [p.read_bytes() for p in photo_files(args.photos, args.seed, args.photo_source)]
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.home, args.workers)
    try:
        session = requests.Session()
        status = session.get(url + "/api/v1/status", timeout=30).json()
        print(f"server {url}: {status['products']} products, index {status['index']['version']} "
              f"({status['index']['type']}), workers {args.workers}")
        for q in warm:  # warm every worker (queries not reused below)
            timed_text(session, url, q)
        for data in photos[:5]:
            timed_photo(session, url, data)
        text = [timed_text(session, url, q) for q in queries]
        photo = [timed_photo(session, url, data) for data in photos]
        report = {"products": status["products"], "index": status["index"], "workers": args.workers,
                  "text": summarise([t for t, _ in text], [b for _, b in text]),
                  "photo": summarise([t for t, _ in photo], [b for _, b in photo])}
        print(f"text  (n={report['text']['n']}): p50 {report['text']['p50_ms']} ms, p95 {report['text']['p95_ms']} ms"
              f"  [target p50 <= 25, p95 <= 60]")
        print(f"photo (n={report['photo']['n']}): p50 {report['photo']['p50_ms']} ms, p95 {report['photo']['p95_ms']} ms"
              f"  [target p50 <= 80]")
        for kind in ("text", "photo"):
            print(f"  {kind} share of time: " + ", ".join(f"{k} {v:.0%}" for k, v in report[kind]["share"].items()))
        load = load_test(url, load_queries, photos, args.clients, args.seconds, args.photo_share)
        report["load"] = load
        print(f"load: {load['clients']} clients x {load['seconds']} s: {load['requests']} requests, "
              f"{load['errors']} errors, {load['throughput_rps']} req/s, p50 {load['p50_ms']} ms, p95 {load['p95_ms']} ms")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=90)  # gunicorn lets workers finish; slow on a busy machine
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    baseline = in_process_baseline(args.home, warm, queries)
    report["in_process_text"] = baseline
    print(f"baseline, engine in-process on the same text queries: p50 {baseline['p50_ms']} ms, p95 "
          f"{baseline['p95_ms']} ms; HTTP/in-process p50 ratio {report['text']['p50_ms'] / baseline['p50_ms']:.2f}")
    alone = baseline["one_after_the_other"]
    print(f"  the same with the multilingual encode after the main one, not beside it: p50 {alone['p50_ms']} ms, "
          f"p95 {alone['p95_ms']} ms (beside / after p50 {baseline['beside_over_one_after_the_other_p50']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
