"""Ray indexing benchmark (issue 14 part 4): `shoplens index` on the same Myntra products locally and with
`--ray local` at 1 and 2 encoding actors, in one run, each in a fresh home; then the same on a 32-product catalog
to separate Ray's fixed cost (starting Ray, each actor loading the model) from its per-product cost.

  python bench/ray_index.py [--n 2000] [--write]   prints JSON, writes bench/out/ray-index.json; --write also
                                                   replaces the "ray index" section of bench/RESULTS.md

Figures are wall time of the whole command (process start, model load, ingest, publish) and products/s over it;
ratios are against the local run of the same catalog in the same bench run. The load average is recorded with
each run (the machine is shared).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from catalogs import MYNTRA, MYNTRA_MAP  # noqa: E402

OUT = ROOT / "bench" / "out"
SMALL = 32
MODES = (("local", None), ("ray, 1 actor", 1), ("ray, 2 actors", 2))


def _subset(n: int) -> Path:
    """The first n Myntra products as a CSV (the README's options index it with --images-root MYNTRA)."""
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), [row for _, row in zip(range(n), reader)]
    path = OUT / f"myntra-{n}.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _index(catalog: Path, actors: int | None) -> dict:
    """One `shoplens index` child process in a fresh home; its wall time, products/s and summary line."""
    home = OUT / "ray-index-home"
    shutil.rmtree(home, ignore_errors=True)
    cmd = [sys.executable, "-m", "web.cli", "--home", str(home), "index", str(catalog), "--images-root", str(MYNTRA),
           *[a for m in MYNTRA_MAP for a in ("--map", m)], "--no-progress", "--read-text", "off"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if actors:
        cmd += ["--ray", "local"]
        env["SHOPLENS_RAY_ACTORS"] = str(actors)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    indexed = int(re.search(r"indexed (\d+)", proc.stdout).group(1))
    shutil.rmtree(home, ignore_errors=True)
    return {"wall_s": round(wall, 1), "indexed": indexed, "products_per_s": round(indexed / wall, 2),
            "load_average_1m_before": round(load, 2), "summary": proc.stdout.strip(),
            "stderr_lines": len(proc.stderr.strip().splitlines())}


def run(n: int) -> dict:
    big, small = _subset(n), _subset(SMALL)
    result: dict = {"n": n, "small_n": SMALL, "cpus": os.cpu_count(), "runs": {}}
    for label, actors in MODES:
        result["runs"][label] = {"big": _index(big, actors), "small": _index(small, actors)}
    local = result["runs"]["local"]
    for label, r in result["runs"].items():
        # Fixed cost: the small catalog's extra seconds over local; per-product: the rest of the difference.
        r["vs_local_throughput"] = round(r["big"]["products_per_s"] / local["big"]["products_per_s"], 3)
        r["fixed_overhead_s"] = round(r["small"]["wall_s"] - local["small"]["wall_s"], 1)
        marginal = (r["big"]["wall_s"] - r["small"]["wall_s"]) / (n - SMALL)
        r["marginal_products_per_s"] = round(1 / marginal, 2)
    one, two = result["runs"]["ray, 1 actor"], result["runs"]["ray, 2 actors"]
    result["scaling_2_vs_1_actors"] = round(two["big"]["products_per_s"] / one["big"]["products_per_s"], 3)
    result["scaling_2_vs_1_marginal"] = round(two["marginal_products_per_s"] / one["marginal_products_per_s"], 3)
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return result


def _section(r: dict) -> str:
    rows = "\n".join(
        f"| {label} | {v['big']['wall_s']} s | {v['big']['products_per_s']} | {v['vs_local_throughput']} | "
        f"{v['small']['wall_s']} s | {v['fixed_overhead_s']} s | {v['marginal_products_per_s']} | "
        f"{v['big']['load_average_1m_before']} |" for label, v in r["runs"].items())
    return (f"## ray index (`.venv/bin/python bench/ray_index.py --n {r['n']} --write`)\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {r['cpus']} cores shared with other jobs (load "
            f"average after: {r['load_average_1m_after']}); the first {r['n']} Myntra products, README options, "
            f"`--read-text off`, fresh SQLite home per run, model shoplens-lite; raw JSON: bench/out/ray-index.json.\n"
            f"Wall time of the whole command; marginal = products/s between the {r['small_n']}-product and the "
            f"{r['n']}-product run (start-up cancelled out); fixed overhead = the {r['small_n']}-product run's "
            f"seconds over the local one (starting Ray, each actor loading the model).\n\n"
            "| run | wall | products/s | vs local | 32-product wall | fixed overhead | marginal products/s | "
            "load before |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n" + rows +
            f"\n\nScaling, 2 actors vs 1: **{r['scaling_2_vs_1_actors']}x** whole-command, "
            f"**{r['scaling_2_vs_1_marginal']}x** marginal.\n")


def write_results(r: dict) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    section = _section(r)
    pattern = re.compile(r"^## ray index.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--write", action="store_true", help="replace the 'ray index' section of bench/RESULTS.md")
    args = parser.parse_args()
    result = run(args.n)
    (OUT / "ray-index.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if args.write:
        write_results(result)


if __name__ == "__main__":
    main()
