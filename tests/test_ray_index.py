"""`shoplens index --ray`: the same outcomes as a local run on real Myntra and grocery rows (products, keys,
rejected rows and reasons, printed text, vectors within float tolerance), a Ray worker killed mid-batch and a
driver killed mid-run losing and duplicating nothing, and an unreachable cluster as one line.

Every Ray cluster here is started by the test (`--ray local`: `ray.init` with 2 CPUs, two encoding actors) and
stopped by it; `_no_ray_left` checks that nothing of it outlives the test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text

from indexer.config import load_settings
from indexer.distributed import check_address
from indexer.errors import BadInput
from indexer.store import Embedding, ImageText, IngestRun, Product, RowOutcome, open_store
from indexer_data import GROCERY, GROCERY_MAP, myntra_map_args, myntra_rows, myntra_spread, write_csv
from web.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ACTOR = "BatchEncoder"  # in the class name Ray Data gives its actors: MapWorker(MapBatches(BatchEncoder))
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnv")  # per-node agents that poll for their raylet


@pytest.fixture(autouse=True)
def _no_ray_left(monkeypatch):
    """Two actors of one CPU each; after the test, no Ray in this process and no Ray process of ours alive."""
    monkeypatch.setenv("SHOPLENS_RAY_ACTORS", "2")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
        pytest.fail("a Ray session outlived the run that started it")
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _, left = psutil.wait_procs(started, timeout=30)  # ray.shutdown stops them; give them time to exit
    left = [p for p in left if _running(p)]
    _kill(left)
    assert not left, f"processes left behind: {[_name(p) for p in left]}"


def _run(home: Path, catalog: Path, *args: str):
    result = CliRunner().invoke(cli, ["--home", str(home), "index", str(catalog), "--no-progress", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _snapshot(home: Path) -> dict:
    """What a run leaves in the store: products with their keys and hashes, the last run's row outcomes, the
    printed-text readings and every vector."""
    store = open_store(load_settings(home=home).db_url)
    with store.session() as s:
        last = s.scalar(select(func.max(IngestRun.id)))
        return {
            "products": sorted(s.execute(select(Product.id, Product.key, Product.status, Product.title,
                                                Product.price, Product.image_ref, Product.image_hash,
                                                Product.text_hash, Product.meta_hash)).all()),
            "outcomes": sorted(s.execute(select(RowOutcome.row_number, RowOutcome.product_id, RowOutcome.outcome,
                                                RowOutcome.reason).where(RowOutcome.run_id == last)).all(),
                               key=repr),
            "texts": sorted((sha, outcome, [line["text"] for line in lines]) for sha, outcome, lines in
                            s.execute(select(ImageText.sha256, ImageText.outcome, ImageText.lines))),
            "vectors": {(pid, kind): np.frombuffer(vec, dtype=np.float32) for pid, kind, vec in
                        s.execute(select(Embedding.product_id, Embedding.kind, Embedding.vector))},
        }


def _assert_same(local: dict, ray_: dict) -> None:
    for key in ("products", "outcomes", "texts"):
        assert ray_[key] == local[key], key
    assert ray_["vectors"].keys() == local["vectors"].keys()
    worst = max(float(np.abs(ray_["vectors"][k] - v).max()) for k, v in local["vectors"].items())
    assert worst < 1e-4, f"vectors differ by up to {worst}"


def _vectors_per_product(home: Path) -> dict[str, int]:
    """Stored vectors per product (every model and kind): a duplicate or a lost one changes a count."""
    with open_store(load_settings(home=home).db_url).session() as s:
        return dict(s.execute(select(Embedding.product_id, func.count()).group_by(Embedding.product_id)).all())


def _bad_rows(tmp_path: Path, rows: list[dict]) -> None:
    """Rows the catalog reader or the image check rejects: a truncated photo, a missing one, none, a bad price
    and a duplicate id."""
    jpeg = Path(rows[0]["image_hr"]).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg[: len(jpeg) // 3])
    rows[1]["image_hr"] = str(truncated)
    rows[2]["image_hr"] = str(tmp_path / "missing.jpg")
    rows[3]["image_hr"], rows[3]["thumb_60x80"] = "", ""
    rows[4]["discounted_price_inr"], rows[4]["price_inr"] = "cheap", "cheap"
    rows.append(dict(rows[5]))


def test_ray_index_matches_local_index_and_reruns_unchanged(tmp_path):
    rows, fields = myntra_rows(40)
    _bad_rows(tmp_path, rows)
    catalog = write_csv(tmp_path / "c.csv", rows, fields)
    args = [*myntra_map_args(), "--batch-size", "8", "--read-text", "off"]

    local = _run(tmp_path / "local", catalog, *args)
    on_ray = _run(tmp_path / "ray", catalog, *args, "--ray", "local")
    assert local.exit_code == on_ray.exit_code == 3
    assert "indexed 36, updated 0, unchanged 0, rejected 5" in on_ray.stdout
    _assert_same(_snapshot(tmp_path / "local"), _snapshot(tmp_path / "ray"))
    assert "Traceback" not in on_ray.output and "streaming_executor" not in on_ray.output

    before = _vectors_per_product(tmp_path / "ray")
    again = _run(tmp_path / "ray", catalog, *args, "--ray", "local")
    assert "indexed 0, updated 0, unchanged 36, rejected 5" in again.stdout
    assert _vectors_per_product(tmp_path / "ray") == before and len(before) == 36


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_unreachable_cluster_is_one_line_before_the_model_loads(tmp_path, address):
    catalog = write_csv(tmp_path / "c.csv", *myntra_rows(2))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "web.cli", "--home", str(tmp_path / "h"), "index", str(catalog),
                             "--ray", address], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the Ray cluster at {address}"), lines
    assert time.monotonic() - started < 60


def test_ray_addresses_are_checked():
    assert check_address(" ray://head:10001 ") == "ray://head:10001"
    for good in ("local", "auto", "10.0.0.5:6379"):
        assert check_address(good) == good
    for bad in ("", "ray://head", "http://head:8265", "two words:1"):
        with pytest.raises(BadInput):
            check_address(bad)


def _count(db: Path, table: str = "products") -> int:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    except Exception:  # the schema may not exist yet
        return 0
    finally:
        engine.dispose()


def _kill_an_actor_when(db: Path, at_least: int, killed: list) -> threading.Thread:
    """A thread that SIGKILLs one of this process's encoding actors (its pid from Ray's actor table) once the
    run has committed `at_least` products, recording the count it saw."""
    import ray
    from ray._private import state

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            if ray.is_initialized() and _count(db) >= at_least:
                try:
                    actors = [a for a in state.actors().values() if ACTOR in a["ActorClassName"]
                              and a["State"] == "ALIVE"]
                except Exception:  # Ray is starting or stopping
                    actors = []
                if actors:
                    killed.append(_count(db))
                    os.kill(actors[0]["Pid"], signal.SIGKILL)
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_and_duplicates_nothing(tmp_path):
    rows, fields = myntra_spread(300)
    catalog = write_csv(tmp_path / "c.csv", rows, fields)
    args = [*myntra_map_args(), "--batch-size", "16", "--read-text", "off"]
    killed: list[int] = []
    watcher = _kill_an_actor_when(tmp_path / "ray" / "shoplens.db", 48, killed)
    on_ray = _run(tmp_path / "ray", catalog, *args, "--ray", "local")
    watcher.join(timeout=5)
    assert killed and killed[0] < 300, "no actor was killed mid-run"
    assert on_ray.exit_code == 0, on_ray.output
    assert "indexed 300, updated 0, unchanged 0, rejected 0" in on_ray.stdout

    local = _run(tmp_path / "local", catalog, *args)
    assert local.exit_code == 0
    _assert_same(_snapshot(tmp_path / "local"), _snapshot(tmp_path / "ray"))
    assert _count(tmp_path / "ray" / "shoplens.db", "row_outcomes") == 300


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:  # it exited meanwhile
        return ""


def _kill(processes: list[psutil.Process]) -> None:
    """SIGKILL these processes (started by this test), ignoring any that exited meanwhile."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_driver_killed_mid_run_then_rerun_completes_and_ray_stops_with_it(tmp_path):
    rows, fields = myntra_rows(160)
    catalog = write_csv(tmp_path / "c.csv", rows, fields)
    home, db = tmp_path / "home", tmp_path / "home" / "shoplens.db"
    cmd = [sys.executable, "-m", "web.cli", "--home", str(home), "index", str(catalog), *myntra_map_args(),
           "--no-progress", "--batch-size", "16", "--read-text", "off", "--ray", "local"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while _count(db) < 32 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    ray_processes = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _count(db)
    assert 32 <= killed_at < 160
    _, alive = psutil.wait_procs(ray_processes, timeout=60)
    alive = [p for p in alive if _running(p)]  # a zombie has exited; only its dead parent could have reaped it
    # Ray's agents notice the raylet's death on their own polling; give them longer, then stop them (ours).
    core = [p for p in alive if not _name(p).startswith(AGENTS)]
    _, agents = psutil.wait_procs([p for p in alive if p not in core], timeout=120)
    _kill(alive)
    assert not core, f"Ray processes outlived their driver: {[_name(p) for p in core]}"
    assert not [p for p in agents if _running(p)], "Ray's agents outlived their raylet by 3 minutes"

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"indexed {160 - killed_at}, updated 0, unchanged {killed_at}" in rerun.stdout
    store = open_store(load_settings(home=home).db_url)
    with store.session() as s:
        assert sorted(s.scalars(select(Product.id))) == sorted(r["id"] for r in rows)
        assert len(set(s.scalars(select(Product.key)))) == 160
        assert [r.status for r in s.scalars(select(IngestRun).order_by(IngestRun.id))] == ["interrupted", "done"]
    vectors = _vectors_per_product(home)
    assert len(vectors) == 160 and len(set(vectors.values())) == 1 and min(vectors.values()) >= 3


@pytest.mark.slow
def test_ray_reads_printed_text_as_local_does(tmp_path):
    args = ["--read-text", "on", "--batch-size", "16", *[a for m in GROCERY_MAP for a in ("--map", m)]]
    local = _run(tmp_path / "local", GROCERY / "products.csv", *args)
    on_ray = _run(tmp_path / "ray", GROCERY / "products.csv", *args, "--ray", "local")
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    local_state, ray_state = _snapshot(tmp_path / "local"), _snapshot(tmp_path / "ray")
    assert len(ray_state["texts"]) >= 40
    _assert_same(local_state, ray_state)
