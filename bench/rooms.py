"""Scene photos (shop the look) on the IKEA room photos: Recall@10, nDCG@10 and Recall@50 of the products listed for
each room, whole-photo query (scene=off, the baseline) against region search (scene=on), plus the latency of both
over real HTTP (a werkzeug server thread in this process, requests sent with `requests`, the client's own time
included). What scene=auto would answer is the scene=on result where the engine's own scene test
(`search.ranking.scene.detect_scene`, run here beside the server) calls the photo a
scene, else the scene=off result: the same two rankings, without a third HTTP query per room.

Relevance is binary, by image: the engine folds products with byte-identical images into one result (an image
query can't tell RIBBA 13x18 from RIBBA 21x30 when both show one photo), so a result counts as relevant when its
image group (`source_image_md5`) holds a listed product, each group counts once, and a room's ideal is its number
of listed groups. Rooms are split by their position in room_queries.csv (the package holds only even-numbered
ids): positions 0, 2, 4, ... tuned the proposals and the merge ("tune"), 1, 3, 5, ... are held out ("held-out").

    .venv/bin/shoplens --home /tmp/ikea-home index ../shared/datasets/ikea_interior/products.csv \\
        --map id=product_id --map image=image_path --map category=category_path
    .venv/bin/python bench/rooms.py --home /tmp/ikea-home [--json OUT.json] [--limit N]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import statistics
import threading
import time
from pathlib import Path

import requests
from PIL import Image
from werkzeug.serving import BaseWSGIServer, make_server

from indexer.config import load_settings
from search.ranking.scene import detect_scene
from web.app import create_app
from web.services import services

log = logging.getLogger("bench.rooms")
DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ikea_interior"
MODES = ("off", "on")
K = 50


def metrics(result_ids: list[str], relevant: set[str], group: dict[str, str]) -> dict[str, float]:
    """Recall@10, nDCG@10 and Recall@50 over image groups (see the module's docstring)."""
    wanted = {group.get(p, p) for p in relevant}
    seen: list[str] = []
    for pid in result_ids:
        g = group.get(pid, pid)
        if g not in seen:
            seen.append(g)
    gains = [1.0 if g in wanted else 0.0 for g in seen[:K]]
    dcg = sum(x / math.log2(i + 2) for i, x in enumerate(gains[:10]))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(wanted))))
    return {"recall@10": sum(gains[:10]) / len(wanted), "ndcg@10": dcg / ideal, "recall@50": sum(gains) / len(wanted)}


def serve(home: Path) -> tuple[str, BaseWSGIServer]:
    """The real app on a local port (one werkzeug server thread), warmed up."""
    app = create_app({"home": home, "rate_limit_per_minute": 0})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/ikea-home"))
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--limit", type=int, help="only the first N rooms (a quick look)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with open(args.dataset / "product_attributes.csv", newline="", encoding="utf-8") as fh:
        group = {r["product_id"]: r["source_image_md5"] for r in csv.DictReader(fh)}
    with open(args.dataset / "room_queries.csv", newline="", encoding="utf-8") as fh:
        rooms = list(csv.DictReader(fh))[: args.limit]
    base, server = serve(args.home)
    with server.app.app_context():
        engine = services().engine
    tuning = load_settings(home=args.home).search
    photo = (args.dataset / rooms[0]["query_image_path"]).read_bytes()
    for mode in MODES:  # warm-up: model, index, moments
        requests.post(f"{base}/api/v1/search", files={"image": ("r.jpg", photo)},
                      data={"scene": mode}).raise_for_status()

    per_room: list[dict] = []
    latency: dict[str, list[float]] = {m: [] for m in MODES}
    for i, room in enumerate(rooms):
        photo = (args.dataset / room["query_image_path"]).read_bytes()
        relevant = set(room["relevant_product_ids"].split(";"))
        row = {"id": room["query_id"], "part": "tune" if i % 2 == 0 else "held-out"}
        for mode in MODES:
            started = time.perf_counter()
            r = requests.post(f"{base}/api/v1/search", files={"image": ("room.jpg", photo)},
                              data={"scene": mode, "k": str(K)})
            latency[mode].append(time.perf_counter() - started)
            r.raise_for_status()
            body = r.json()
            ids = [pid for item in body["results"] for pid in [item["id"], *item["duplicates"]]]
            row[mode] = metrics(ids, relevant, group)
            assert body["query"]["scene"] == (mode == "on")
        image = Image.open(io.BytesIO(photo)).convert("RGB")
        row["auto_scene"] = detect_scene(engine.encoder(), image, tuning.scene_threshold,
                                         tuning.scene_plain_border) is not None
        row["auto"] = row["on"] if row["auto_scene"] else row["off"]
        per_room.append(row)
        log.info("%s %s", room["query_id"], {m: round(row[m]["ndcg@10"], 3) for m in (*MODES, "auto")})
    server.shutdown()

    report: dict = {"rooms": len(per_room), "latency_ms": {}, "parts": {}}
    for mode in MODES:
        ms = sorted(x * 1000 for x in latency[mode])
        report["latency_ms"][mode] = {"p50": round(statistics.median(ms), 1),
                                      "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1)}
    for part in ("tune", "held-out", "all"):
        rows = [r for r in per_room if part == "all" or r["part"] == part]
        means = {mode: {name: round(statistics.mean(r[mode][name] for r in rows), 4)
                        for name in ("recall@10", "ndcg@10", "recall@50")} for mode in (*MODES, "auto")}
        report["parts"][part] = {"rooms": len(rows), **means,
                                 "auto_scene_share": round(statistics.mean(r["auto_scene"] for r in rows), 3)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**report, "per_room": per_room}, indent=2))


if __name__ == "__main__":
    main()
