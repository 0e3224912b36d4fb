"""ShopLens beside clip-retrieval on the same open_clip checkpoint and the same Myntra products (issue #18): indexing
products per CPU-second, and text and photo query p50 over HTTP (our `shoplens serve` against clip-back), in
alternating runs so that the shared machine's load hits both alike. Not part of `make test`.

    .venv/bin/python bench/peer.py --checkpoint /tmp/vit-b-32.pt [--n 2000] [--rounds 3] [--queries 30]
                                   [--peer-python /tmp/peer-venv/bin/python] [--out /tmp/peer-bench]

The peer runs in its own venv through bench/peer_wrapper.py (its known bugs patched at start); bench/RESULTS.md
"peer" has the recipe for that venv and the results. CPU-seconds are the children's user + system time
(getrusage), so the peer's DataLoader workers and our decode threads count alike.
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import logging
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra_fashion"
SHOPLENS = [sys.executable, "-m", "web.cli"]
log = logging.getLogger("bench.peer")


def prepare(out: Path, n: int) -> list[dict]:
    """The first `n` Myntra products with a photo: our catalog (id, title, image) and the peer's files folder
    (id.jpg linked to the same photo, id.txt the same title)."""
    with (MYNTRA / "products.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["image_hr"]][:n]
    files = out / "files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    with (out / "catalog.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "image"])
        for r in rows:
            image = MYNTRA / r["image_hr"]
            writer.writerow([r["id"], r["title"], str(image)])
            (files / f"{r['id']}.jpg").symlink_to(image)
            (files / f"{r['id']}.txt").write_text(r["title"], encoding="utf-8")
    return rows


def timed(cmd: list[str], log_path: Path, env: dict | None = None) -> tuple[float, float]:
    """Run `cmd` to completion; (wall seconds, CPU-seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log_path.open("w") as logf:
        subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def index_ours(out: Path, model: str, round_no: int) -> tuple[float, float]:
    home = out / f"home-{round_no}"
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([*SHOPLENS, "--home", str(home), "migrate"], check=True, capture_output=True, cwd=ROOT)
    return timed([*SHOPLENS, "--home", str(home), "index", str(out / "catalog.csv"), "--model", model,
                  "--read-text", "off", "--no-progress"], out / f"ours-index-{round_no}.log")


def index_peer(out: Path, peer: list[str], clip_model: str, round_no: int) -> tuple[float, float]:
    emb = out / f"peer-emb-{round_no}"
    shutil.rmtree(emb, ignore_errors=True)
    return timed([*peer, "inference", "--input_dataset", str(out / "files"), "--output_folder", str(emb),
                  "--clip_model", clip_model, "--batch_size", "32", "--num_prepro_workers", "2",
                  "--enable_wandb", "False"], out / f"peer-index-{round_no}.log")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {url} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(2)
    raise RuntimeError(f"server {url} never answered")


def p50_ms(fn, items: list) -> float:
    fn(items[0])  # warm
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def queries(out: Path, peer: list[str], clip_model: str, rows: list[dict], n: int, rounds: int) -> dict:
    """Both servers up side by side (one worker each), then text and photo queries, alternating per round."""
    emb, index = out / "peer-emb-0", out / "peer-index"
    shutil.rmtree(index, ignore_errors=True)
    subprocess.run([*peer, "index", "--embeddings_folder", str(emb), "--index_folder", str(index)], check=True,
                   capture_output=True, cwd=ROOT)
    (out / "indices.json").write_text(json.dumps({"myntra": str(index)}))
    ours_port, peer_port = free_port(), free_port()
    servers = [subprocess.Popen([*SHOPLENS, "--home", str(out / "home-0"), "serve", "--workers", "1",
                                 "--rate-limit", "0", "--port", str(ours_port)], cwd=ROOT,
                                stdout=(out / "ours-serve.log").open("w"), stderr=subprocess.STDOUT),
               subprocess.Popen([*peer, "back", "--indices_paths", str(out / "indices.json"), "--port",
                                 str(peer_port), "--clip_model", clip_model, "--enable_mclip_option", "False",
                                 "--provide_aesthetic_embeddings", "False", "--columns_to_return", '["caption"]'],
                                cwd=ROOT, stdout=(out / "peer-back.log").open("w"), stderr=subprocess.STDOUT)]
    ours, theirs = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
    try:
        wait_ready(ours + "/healthz", servers[0])
        wait_ready(theirs + "/indices-list", servers[1])
        titles = [r["title"] for r in rows[-n:]]  # other products than the photos', and long real titles
        photos = [(MYNTRA / r["image_hr"]).read_bytes() for r in rows[:n]]
        calls = {
            ("ours", "text"): lambda t: requests.get(ours + "/api/v1/search", params={"q": t, "k": 10}, timeout=120),
            ("ours", "photo"): lambda b: requests.post(ours + "/api/v1/search", data={"k": "10"}, timeout=120,
                                                       files={"image": ("q.jpg", b, "image/jpeg")}),
            ("peer", "text"): lambda t: requests.post(theirs + "/knn-service", timeout=120, json={
                "text": t, "modality": "image", "num_images": 10, "indice_name": "myntra"}),
            ("peer", "photo"): lambda b: requests.post(theirs + "/knn-service", timeout=120, json={
                "image": base64.b64encode(b).decode(), "modality": "image", "num_images": 10,
                "indice_name": "myntra"}),
        }
        results: dict[str, list[float]] = {f"{who} {kind}": [] for who, kind in calls}
        for _ in range(rounds):
            for (who, kind), call in calls.items():
                results[f"{who} {kind}"].append(p50_ms(call, titles if kind == "text" else photos))
                log.info("%s %s p50 %.1f ms", who, kind, results[f"{who} {kind}"][-1])
        return results
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="an open_clip ViT-B-32 state_dict (.pt)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=30, help="text and photo queries per round")
    parser.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    parser.add_argument("--out", type=Path, default=Path("/tmp/peer-bench"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint.resolve()
    model, clip_model = f"ViT-B-32:{checkpoint}", f"open_clip:ViT-B-32/{checkpoint}"
    peer = [args.peer_python, str(ROOT / "bench" / "peer_wrapper.py")]
    rows = prepare(args.out, args.n)
    load = os.getloadavg()[0]
    index: dict[str, list[tuple[float, float]]] = {"ours": [], "peer": []}
    for r in range(args.rounds):  # alternating
        index["ours"].append(index_ours(args.out, model, r))
        index["peer"].append(index_peer(args.out, peer, clip_model, r))
        log.info("round %d: ours %.0f s wall / %.0f CPU-s, peer %.0f s / %.0f CPU-s", r, *index["ours"][-1],
                 *index["peer"][-1])
    query = queries(args.out, peer, clip_model, rows, args.queries, args.rounds)
    report = {"n": args.n, "load_at_start": load, "load_at_end": os.getloadavg()[0],
              "index": {who: [{"wall_s": w, "cpu_s": c, "products_per_cpu_s": args.n / c} for w, c in runs]
                        for who, runs in index.items()},
              "query_p50_ms": query}
    (args.out / "peer.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
