"""A catalog of N products simulated from real Myntra products, published and served through the real paths.

    python bench/scale.py [--n 1000000] [--json OUT] [--base-home HOME] [--db URL] [--budget-mb MB]
    python bench/scale.py --plot OUT.png RESULT.json...   # growth with N, from earlier runs' --json files

Simulation (no random Gaussian vectors): each simulated product takes two real products a, b of the base home (a
Myntra home indexed with `shoplens index`; default bench/out/eval-myntra-home, 2,500 products) of the same product
type. Its image and text vectors are the convex mix w * a + (1 - w) * b (w uniform in [0.55, 0.95]) of the real
vectors, plus a small jitter (0.1 of the mix's norm spread over the dimensions), renormalised; the fused vector is
fused from those two as indexing does. Its title is the first half of a's title words and the second half of b's,
brand, category and gender are a's, colour is b's, price a's times a factor in [0.8, 1.2]. Rows are written into
a fresh home's store (SQLite by default, `--db` for PostgreSQL) in batches, then timed:
- build: `indexer.publish.publish_from_store` in a child process (build seconds and its peak RSS), from the
  stored vectors, under the `--budget-mb` memory budget (the setting's default when not given);
- recall@10 per kind against exact search (measured by publish, in the manifest), index bytes per kind (what a
  worker holds: codes or FAISS file, projection; the float16 re-rank store is given apart: it is memory-mapped);
- vector search p50/p95 per kind (`search.vectors.vector_search`, 400 candidates as the engine asks, one thread)
  with the real base products' vectors as queries (they are not in the simulated catalog), against exact search
  over the same float16 vectors in the same run;
- end-to-end text and photo queries over HTTP with facets (`shoplens serve`, one worker): p50/p95, and the
  worker's RSS (current and peak) after them; text queries are real Myntra titles and "colour type" phrases,
  photos real Myntra product images.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query import photo_files, start_server, summarise, text_queries, timed_photo, timed_text  # noqa: E402

log = logging.getLogger("bench.scale")
BATCH = 5_000
KINDS = ("image", "text", "fused")
QUERIES = 200


def load_base(home: Path) -> tuple[str, list, dict[str, np.ndarray]]:
    """The base home's model, its active products (rows) and their vectors per kind, in the rows' order."""
    from sqlalchemy import select

    from indexer.config import load_settings
    from indexer.store import Embedding, Product, open_store, unpack_vector
    from indexer.vectors import current_version, read_manifest

    settings = load_settings(home=home)
    model = read_manifest(settings.index_dir, current_version(settings.index_dir))["model"]
    store = open_store(settings.db_url, migrate=True)
    with store.session() as s:
        rows = s.execute(select(Product.id, Product.title, Product.brand, Product.category, Product.colour,
                                Product.gender, Product.price, Product.currency, Product.image_ref)
                         .where(Product.status == "active").order_by(Product.key)).all()
        vecs: dict[str, dict[str, np.ndarray]] = {k: {} for k in KINDS}
        for pid, kind, blob, dtype in s.execute(select(Embedding.product_id, Embedding.kind, Embedding.vector,
                                                       Embedding.dtype).where(Embedding.model == model)):
            vecs[kind][pid] = unpack_vector(blob, dtype)
    rows = [r for r in rows if all(r.id in vecs[k] for k in KINDS)]
    return model, rows, {k: np.stack([vecs[k][r.id] for r in rows]) for k in KINDS}


def simulate(n: int, rows: list, base: dict[str, np.ndarray], seed: int = 0):
    """Yield (product row dict, {kind: vector}) batches of the simulated catalog (see the module docstring)."""
    from indexer.catalog import sha256_text
    from indexer.ingest import fused_source
    from indexer.product import category_leaf
    from indexer.vectors import fuse_vectors

    rng = np.random.default_rng(seed)
    types = [category_leaf(r.category) for r in rows]
    members = {t: np.array([i for i, u in enumerate(types) if u == t]) for t in set(types)}
    dim = base["image"].shape[1]
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        a = rng.integers(0, len(rows), m)
        b = np.array([rng.choice(members[types[i]]) for i in a])  # a product of the same type
        w = rng.uniform(0.55, 0.95, (m, 1)).astype(np.float32)
        mixed = {}
        for kind in ("image", "text"):
            x = w * base[kind][a] + (1 - w) * base[kind][b]
            x += (0.1 / np.sqrt(dim)) * rng.standard_normal(x.shape).astype(np.float32)
            mixed[kind] = x / np.linalg.norm(x, axis=1, keepdims=True)
        mixed["fused"] = fuse_vectors(mixed["image"], mixed["text"])
        products = []
        for j, (ia, ib) in enumerate(zip(a, b)):
            ra, rb = rows[ia], rows[ib]
            ta, tb = ra.title.split(), rb.title.split()
            title = " ".join(ta[: max(1, len(ta) // 2)] + tb[len(tb) // 2:])
            text_hash, image_hash = sha256_text(title), sha256_text(f"sim-image:{start + j}")
            products.append({"id": f"sim{start + j:08d}", "key": start + j + 1, "title": title, "brand": ra.brand,
                             "category": ra.category, "colour": rb.colour, "gender": ra.gender,
                             "price": None if ra.price is None else round(ra.price * rng.uniform(0.8, 1.2), 2),
                             "currency": ra.currency, "image_ref": ra.image_ref, "attributes": {},
                             "text_hash": text_hash, "image_hash": image_hash, "meta_hash": text_hash,
                             "status": "active", "sources": {"image": image_hash, "text": text_hash,
                                                             "fused": fused_source(image_hash, text_hash)}})
        yield products, mixed


def write_catalog(db_url: str, model: str, n: int, rows: list, base: dict[str, np.ndarray]) -> float:
    """Write the simulated products and their vectors into the store; returns seconds."""
    from datetime import datetime, timezone

    from indexer.store import Embedding, Product, open_store, pack_vector

    store = open_store(db_url, migrate=True)
    started = time.monotonic()
    for products, mixed in simulate(n, rows, base):
        stamp = datetime.now(timezone.utc)
        embeddings = [{"product_id": p["id"], "model": model, "kind": kind, "source_hash": p["sources"][kind],
                       **pack_vector(mixed[kind][j])} for j, p in enumerate(products) for kind in KINDS]
        with store.session() as s:
            s.execute(Product.__table__.insert(), [{**{k: v for k, v in p.items() if k != "sources"},
                                                   "created_at": stamp, "updated_at": stamp} for p in products])
            s.execute(Embedding.__table__.insert(), embeddings)
        log.info("wrote %d / %d products", products[-1]["key"], n)
    store.engine.dispose()
    return time.monotonic() - started


def publish_child(home: Path, db_url: str, model: str, budget_mb: int) -> None:
    """(In a child process) publish the home's store through the real path; prints the manifest's name."""
    from indexer.config import load_settings
    from indexer.model.encoder import load_encoder
    from indexer.publish import publish_from_store
    from indexer.store import open_store

    settings = load_settings(home=home, db_url=db_url)
    encoder = load_encoder(model, cache_dir=settings.model_cache_dir, runtime=settings.inference)
    name, _, _ = publish_from_store(open_store(db_url), settings.index_dir, encoder, budget_mb, force=True)
    print(name)


def build(home: Path, db_url: str, model: str, budget_mb: int) -> tuple[float, float]:
    """(seconds, peak RSS MB) of publishing in a child process."""
    started = time.monotonic()
    subprocess.run([sys.executable, __file__, "--publish-child", str(home), "--db", db_url, "--model", model,
                    "--budget-mb", str(budget_mb)], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.monotonic() - started, peak_kb / 1024


def vector_latency(version, queries: dict[str, np.ndarray], candidates: int) -> dict[str, dict]:
    """Per kind: p50/p95 ms of `vector_search` and of exact search over the same float16 vectors (baseline)."""
    import faiss

    from indexer.vectors import exact_top_k
    from search.vectors import vector_search

    faiss.omp_set_num_threads(1)
    out = {}
    for kind, qs in queries.items():
        index = version.index(kind)
        vector_search(version, kind, qs[0], None, candidates)  # page in what a first query touches
        lat = []
        for q in qs:
            t = time.perf_counter()
            vector_search(version, kind, q, None, candidates)
            lat.append(time.perf_counter() - t)
        stored = getattr(index, "store", None)
        exact = []
        if stored is not None:
            for q in qs[:10]:
                t = time.perf_counter()
                exact_top_k(stored, index.keys, q[None, :], 10)
                exact.append(time.perf_counter() - t)
        ms = np.array(lat) * 1000
        out[kind] = {"search_p50_ms": round(float(np.percentile(ms, 50)), 3),
                     "search_p95_ms": round(float(np.percentile(ms, 95)), 3)}
        if exact:
            out[kind]["exact_p50_ms"] = round(float(np.median(exact)) * 1000, 1)
    return out


def index_bytes(folder: Path, spec: dict) -> tuple[int, int]:
    """(bytes a worker holds for a kind, bytes of its memory-mapped float16 re-rank store)."""
    held = sum((folder / spec[f]).stat().st_size for f in ("file", "projection") if spec.get(f))
    return held, (folder / spec["store"]).stat().st_size if spec.get("store") else 0


def worker_rss(server_pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MB of the gunicorn worker (the server's only child)."""
    import psutil

    child = psutil.Process(server_pid).children()[0]
    status = Path(f"/proc/{child.pid}/status").read_text().splitlines()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024


def serve(home: Path, db_url: str, base_home: Path, n_text: int, n_photo: int) -> dict:
    """Text and photo queries through HTTP against `shoplens serve` with one worker; the worker's RSS after."""
    import requests

    queries = text_queries(str(base_home), n_text + 20, seed=1)  # from the real base products
    env_db = os.environ.get("SHOPLENS_DB")
    os.environ["SHOPLENS_DB"] = db_url
    proc, url = start_server(str(home), 1)
    try:
        session = requests.Session()
        for q in queries[:20]:
            timed_text(session, url, q)
        text = [timed_text(session, url, q) for q in queries[20:]]
        assert all("facets" in body for _, body in text)
        photos = [p.read_bytes() for p in photo_files(n_photo + 5, seed=1, source="myntra")]
        started = time.perf_counter()  # a worker's first photo query builds per-version state (printed words,
        session.post(url + "/api/v1/search", files={"image": ("q.jpg", photos[0], "image/jpeg")}, timeout=900)
        first_photo_s = time.perf_counter() - started  # vector moments): timed apart from the steady state
        for data in photos[1:5]:
            timed_photo(session, url, data)
        photo = [timed_photo(session, url, data) for data in photos[5:]]
        rss, peak = worker_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if env_db is None:
            os.environ.pop("SHOPLENS_DB", None)
        else:
            os.environ["SHOPLENS_DB"] = env_db
    t, p = summarise(*zip(*text)), summarise(*zip(*photo))
    return {"text_p50_ms": t["p50_ms"], "text_p95_ms": t["p95_ms"], "photo_p50_ms": p["p50_ms"],
            "photo_p95_ms": p["p95_ms"], "first_photo_s": round(first_photo_s, 1),
            "serve_rss_mb": round(rss, 1), "serve_peak_rss_mb": round(peak, 1)}


def plot(out: Path, results: list[Path]) -> None:
    """Build seconds, serving RSS, vector search and HTTP p50 against N, one line per store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted((json.loads(p.read_text()) for p in results), key=lambda r: (r["db"], r["n"]))
    panels = (("build_s", "build (s)"), ("serve_rss_mb", "serving worker RSS (MB)"),
              ("search_p50_ms", "vector search p50 (ms)"), ("text_p50_ms", "HTTP p50 (ms)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.6))
    for ax, (key, label) in zip(axes, panels):
        for db in sorted({r["db"] for r in runs}):
            mine = [r for r in runs if r["db"] == db]
            n = [r["n"] for r in mine]
            if key == "search_p50_ms":
                for kind in KINDS:
                    ax.plot(n, [r["kinds"][kind][key] for r in mine], marker="o", label=f"{db} {kind}")
            elif key == "text_p50_ms":
                ax.plot(n, [r["text_p50_ms"] for r in mine], marker="o", label=f"{db} text")
                ax.plot(n, [r["photo_p50_ms"] for r in mine], marker="s", label=f"{db} photo")
            else:
                ax.plot(n, [r[key] for r in mine], marker="o", label=db)
        ax.set_xlabel("products")
        ax.set_title(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--base-home", type=Path, default=ROOT / "bench" / "out" / "eval-myntra-home",
                        help="a home with indexed Myntra products (their rows and vectors are the base)")
    parser.add_argument("--home", type=Path, help="where the simulated home goes (default: a new temp folder)")
    parser.add_argument("--db", help="database URL of the simulated home (default: SQLite in it)")
    parser.add_argument("--budget-mb", type=int, help="index memory budget (default: the setting's default)")
    parser.add_argument("--text", type=int, default=QUERIES)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the simulated home")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again the --home an earlier run built (build figures from its --json)")
    parser.add_argument("--plot", nargs="+", type=Path, metavar="PATH",
                        help="OUT.png then the --json files of earlier runs: draw them and exit")
    parser.add_argument("--publish-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from indexer.config import Settings, load_settings

    budget = args.budget_mb or Settings.index_memory_budget_mb
    if args.plot:
        plot(args.plot[0], args.plot[1:])
        return
    if args.publish_child:
        publish_child(args.publish_child, args.db, args.model, budget)
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="shoplens-scale-"))
    home.mkdir(parents=True, exist_ok=True)
    db_url = args.db or load_settings(home=home).db_url
    model, rows, base = load_base(args.base_home)
    log.info("base: %d Myntra products of %s; simulating %d into %s", len(rows), model, args.n, db_url)
    if args.reuse:  # measure again what an earlier run of this --home built; its build figures from --json if any
        before = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
        write_s, build_s, build_rss = (before.get(k) for k in ("write_s", "build_s", "build_peak_rss_mb"))
    else:
        write_s = write_catalog(db_url, model, args.n, rows, base)
        build_s, build_rss = build(home, db_url, model, budget)

    from indexer.vectors import IndexReader

    version = IndexReader(home / "index").current()
    manifest = version.manifest
    queries = {k: base[k][np.random.default_rng(2).choice(len(rows), QUERIES, replace=False)] for k in KINDS}
    latency = vector_latency(version, queries, candidates=load_settings(home=home).search.candidates)
    kinds = {}
    for kind in KINDS:
        spec = manifest["kinds"][kind]
        held, store = index_bytes(version.path, spec)
        kinds[kind] = {"type": spec["type"], "plan": spec.get("plan"), "recall_at_10": spec["recall_at_10_vs_exact"],
                       "index_bytes": held, "rerank_store_bytes": store, **latency[kind]}
    served = serve(home, db_url, args.base_home, args.text, args.photos)
    out = {"n": args.n, "db": "postgresql" if db_url.startswith("postgres") else "sqlite", "budget_mb": budget,
           "write_s": write_s and round(write_s, 1), "build_s": build_s and round(build_s, 1),
           "build_peak_rss_mb": build_rss and round(build_rss, 1),
           "kinds": kinds, **served, "load_average": os.getloadavg(), "base_products": len(rows), "model": model}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    if not args.keep and not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
