"""Encoder throughput on this machine, eager PyTorch against the ONNX Runtime fast path (indexer.model.runtime) in
the same run: images/s and texts/s at several batch sizes, what the whole image path (JPEG decode + preprocess +
forward) costs relative to the bare forward pass, and one query's latency (a short text, a long title, one photo).

    .venv/bin/python bench/encode.py [--model shoplens-lite] [--n 256] [--runtimes eager,onnx] [--write]

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
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from indexer.model.encoder import FORWARD_BATCH, load_encoder

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
    for batch in sorted({1, FORWARD_BATCH, 32}):
        n = args.n // 2 if batch == 1 else args.n
        for runtime, encoder in encoders.items():  # interleaved, so drifting load hits both alike
            encoder.batch_size = batch
            forward = best_of(lambda: encoder.encode_image_tensors(tensors[:n]), args.repeats)
            whole = best_of(lambda: encoder.encode_images([Image.open(io.BytesIO(b)) for b in blobs[:n]]),
                            args.repeats)
            text = best_of(lambda: encoder.encode_texts(titles[:n]), args.repeats)
            label = f"{batch} (the encoder's)" if batch == FORWARD_BATCH else str(batch)
            lines.append(f"| {encoder.runtime} | {label} | {n / forward:.1f} | {n / whole:.1f} | "
                         f"{whole / forward:.2f} | {n / text:.1f} |")
            log.info(lines[-1])
    lines += ["", "One query (median of 30, ms):", "", "| runtime | short text | long title | one photo |",
              "| --- | --- | --- | --- |"]
    for runtime, encoder in encoders.items():
        encoder.batch_size = FORWARD_BATCH
        cells = [median_ms(fn) for fn in (lambda: encoder.encode_texts(["red summer dress"]),
                                          lambda: encoder.encode_texts([long_title]),
                                          lambda: encoder.encode_image_tensors(tensors[:1]))]
        lines.append(f"| {encoder.runtime} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
        log.info(lines[-1])
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(ROOT / "bench" / "RESULTS.md", "encode",
                      f"`python bench/encode.py {' '.join(sys.argv[1:])}` "
                      f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
                      f"\n\n{table}\n")


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
