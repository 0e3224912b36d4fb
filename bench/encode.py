"""Encoder throughput on this machine, eager PyTorch against the ONNX Runtime fast path (indexer.model.runtime) in
the same run: images/s and texts/s at several batch sizes, what the whole image path (JPEG decode + preprocess +
forward) costs relative to the bare forward pass, and one query's latency (a short text, a long title, one photo).

    .venv/bin/python bench/encode.py [--model shoplens-lite] [--n 256] [--runtimes eager,onnx] [--batches 1,8,32]
                                     [--write]

The best batch per tower and runtime is what a model's description should carry (`Batches` in
indexer/model/encoder.py: a registered model's config JSON, or the measured default of its architecture).

Real Myntra images and titles (../shared/datasets). Each figure is the best of `--repeats` timed passes after a
warm-up, so other load on the machine inflates figures less. `--write` replaces the "encode" section of
bench/RESULTS.md with the table.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra_fashion"
log = logging.getLogger("bench.encode")


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shoplens-lite")
    parser.add_argument("--n", type=int, default=256, help="images and texts per timed pass (batch 1: n/2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtimes", default="eager,onnx", help="comma-separated: eager, onnx")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated forward batch sizes to time")
    parser.add_argument("--query-threads", default="", help="also time one query on ONNX Runtime sessions with "
                        "these intra-op thread counts (comma-separated, e.g. 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the one-query timings")
    parser.add_argument("--forward-only", action="store_true", help="skip the decode+preprocess+forward column")
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from indexer.model.encoder import Batches, load_encoder

    encoders = {rt: load_encoder(args.model, runtime=rt) for rt in args.runtimes.split(",")}
    enc = next(iter(encoders.values()))
    with (MYNTRA / "products.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["image_hr"]][: args.n]
    blobs = [(MYNTRA / r["image_hr"]).read_bytes() for r in rows]
    titles = [r["title"] for r in rows]
    long_title = max(titles, key=len)
    tensors = torch.stack([enc.preprocess(Image.open(io.BytesIO(b))) for b in blobs])

    lines = [f"Model `{enc.name}` (dim {enc.dim}); {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads; "
             f"load average at start {os.getloadavg()[0]:.1f}.", "",
             "| runtime | batch | images/s (forward) | images/s (decode+preprocess+forward) | whole / forward time "
             "| texts/s |", "| --- | --- | --- | --- | --- | --- |"]
    own = {runtime: encoder.batches for runtime, encoder in encoders.items()}
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for batch in sorted({int(b) for b in args.batches.split(",") if b}):
        n = args.n // 2 if batch == 1 else args.n
        for runtime, encoder in encoders.items():  # interleaved, so drifting load hits both alike
            encoder.batches = Batches(image=batch, text=batch)
            forward = best_of(lambda: encoder.encode_image_tensors(tensors[:n]), args.repeats)
            whole = forward if args.forward_only else best_of(
                lambda: encoder.encode_images([Image.open(io.BytesIO(b)) for b in blobs[:n]]), args.repeats)
            text = best_of(lambda: encoder.encode_texts(titles[:n]), args.repeats)
            for tower, rate in (("image", n / forward), ("text", n / text)):
                best[runtime, tower] = max(best.get((runtime, tower), (0.0, 0)), (rate, batch))
            mine = [t for t in ("image", "text") if getattr(own[runtime], t) == batch]
            label = f"{batch} (the encoder's: {', '.join(mine)})" if mine else str(batch)
            whole_cells = "- | - |" if args.forward_only else f"{n / whole:.1f} | {whole / forward:.2f} |"
            lines.append(f"| {encoder.runtime} | {label} | {n / forward:.1f} | {whole_cells} {n / text:.1f} |")
            log.info(lines[-1])
    lines += ["", "Fastest batch per tower: " + "; ".join(
        f"{runtime} {tower} {batch} ({rate:.1f}/s)" for (runtime, tower), (rate, batch) in sorted(best.items())) + "."]
    for runtime, encoder in encoders.items():
        encoder.batches = own[runtime]
    queries = dict(encoders)
    for threads in (int(t) for t in args.query_threads.split(",") if t):
        queries[f"onnx, {threads} intra-op thread{'s' if threads > 1 else ''}"] = threaded(args.model, threads)
    lines += ["", f"One query (ms; median over {args.rounds} interleaved rounds of the median of 10):", "",
              "| runtime | short text | long title | one photo |", "| --- | --- | --- | --- |"]
    rounds: dict[str, list[list[float]]] = {label: [] for label in queries}
    for _ in range(args.rounds):  # interleaved, so drifting load hits every runtime alike
        for label, encoder in queries.items():
            rounds[label].append([median_ms(fn, 10) for fn in (lambda: encoder.encode_texts(["red summer dress"]),
                                                               lambda: encoder.encode_texts([long_title]),
                                                               lambda: encoder.encode_image_tensors(tensors[:1]))])
    for label, cells in rounds.items():
        lines.append(f"| {label} | " + " | ".join(f"{statistics.median(c):.1f}" for c in zip(*cells)) + " |")
        log.info(lines[-1])
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(ROOT / "bench" / "RESULTS.md", f"encode: {args.model.split(':')[0]}",
                      f"`python bench/encode.py {' '.join(sys.argv[1:])}` "
                      f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
                      f"\n\n{table}\n")


def threaded(spec: str, threads: int):
    """A second ONNX encoder of `spec` whose sessions run `threads` intra-op threads (load_encoder's follow torch)."""
    from indexer.config import load_settings
    from indexer.model.encoder import _build

    cache = load_settings().model_cache_dir
    encoder = _build(spec, cache)
    encoder.use_runtime("onnx", cache, threads=threads)
    return encoder


def median_ms(fn, n: int = 30) -> float:
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[n // 2] * 1000


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the `## name` section of a markdown file, leaving other sections alone."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    section = f"## {name}\n\n{body}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
