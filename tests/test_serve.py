"""`shoplens serve` for real: gunicorn with two workers on a free port, ready with the index version."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow
SHOPLENS = Path(sys.executable).with_name("shoplens")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_workers_that_report_the_index_version(real_home):
    port = free_port()
    proc = subprocess.Popen([str(SHOPLENS), "--home", str(real_home), "serve", "--port", str(port), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        health = None
        while time.time() < deadline and proc.poll() is None:
            try:
                health = requests.get(url + "/healthz", timeout=5)
                if health.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert health is not None and health.status_code == 200, "server never became ready"
        version = (real_home / "index" / "CURRENT").read_text().strip()
        assert health.json() == {"status": "ok", "index_version": version}
        for _ in range(6):  # several requests, so both workers answer some
            assert requests.get(url + "/api/v1/search", params={"q": "watch"}, timeout=60).status_code == 200
        metrics = requests.get(url + "/metrics", timeout=10).text
        assert 'shoplens_stage_seconds_count{kind="text",stage="encode"}' in metrics
        # Six equal queries over two workers: each worker encodes it once, the cache answers the rest.
        cache = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("shoplens_query_cache_")}
        assert cache["shoplens_query_cache_misses"] <= 4 and cache["shoplens_query_cache_hits"] >= 4, cache
        assert requests.get(url + "/api/v1/search", params={"k": "x"}, timeout=10).status_code == 400
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert out.count("ready: index version") == 2, out[-2000:]
    # Each worker's OpenMP runtimes start at its share of the cores in every thread (a request thread's FAISS or
    # torch loop at the core count spun against the other worker: 8 clients got 2-4 answers a second).
    share = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // 2))
    assert out.count(f"OpenMP threads {share} per thread") == 2, out[-2000:]
    # And says how its towers run: the default model on ONNX Runtime, fp32 (int8 loses too much of its text tower).
    assert out.count("towers on onnx (image fp32, text fp32)") == 2, out[-2000:]
    # And e5 too, on the graph built from its engine's weights (indexer.model.multilingual_runtime).
    assert out.count("multilingual model on onnx") == 2, out[-2000:]
