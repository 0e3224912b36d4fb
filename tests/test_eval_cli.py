"""`shoplens eval` end to end on the real grocery catalog, indexed with the real pipeline and model:
photo, title and photo + text queries built from the catalog; every mode; JSON, TREC run files, report, stored
runs, --strict, --compare and the /eval pages."""
from __future__ import annotations

import csv
import json
import tempfile
from functools import cache
from pathlib import Path

import pytest

from indexer_data import GROCERY, GROCERY_MAP, shoplens
from indexer.store import open_store
from search.evaluation import heldout, reports
from search.evaluation.metrics import mean_scores, per_query_scores
from search.evaluation.trec import read_qrels, read_run

pytestmark = pytest.mark.slow

INTERFACE_METRICS = {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"}


def _maps() -> list[str]:
    return [a for m in GROCERY_MAP for a in ("--map", m)]


@cache
def grocery_home() -> tuple[Path, Path]:
    """An indexed grocery home and a folder with photo, title and combined query files."""
    home = Path(tempfile.mkdtemp(prefix="shoplens-eval-test-"))
    shoplens(home, "migrate")
    shoplens(home, "index", str(GROCERY / "products.csv"), "--no-progress", *_maps())
    q = home / "queries"
    shoplens(home, "eval", "build-queries", "photo", "--catalog", str(GROCERY / "products.csv"), *_maps(),
             "--photos", str(GROCERY / "photo_queries.csv"), "--n", "40", "--seed", "1",
             "--queries-out", str(q / "photo.jsonl"), "--qrels-out", str(q / "photo.qrels"))
    shoplens(home, "eval", "build-queries", "title", "--catalog", str(GROCERY / "products.csv"), *_maps(),
             "--n", "20", "--seed", "1", "--queries-out", str(q / "title.jsonl"), "--qrels-out", str(q / "title.qrels"))
    # photo + text: the photo and its product's coarse class ("Apple"), judged like the photo alone
    with (GROCERY / "products.csv").open(newline="") as fh:
        coarse = {r["product_id"]: r["coarse_class"] for r in csv.DictReader(fh)}
    photo_lines = (q / "photo.jsonl").read_text().splitlines()[:10]
    qrels = read_qrels(q / "photo.qrels")
    combined, combined_qrels = [], []
    for line in photo_lines:
        obj = json.loads(line)
        target = next(iter(qrels[obj["id"]]))
        combined.append(json.dumps({"id": "both-" + obj["id"], "image": obj["image"], "text": coarse[target]}))
        combined_qrels.append(f"both-{obj['id']} 0 {target} 1")
    (q / "all.jsonl").write_text("".join((q / f).read_text() for f in ("photo.jsonl", "title.jsonl"))
                                 + "\n".join(combined) + "\n")
    (q / "all.qrels").write_text("".join((q / f).read_text() for f in ("photo.qrels", "title.qrels"))
                                 + "\n".join(combined_qrels) + "\n")
    return home, q


def test_eval_all_modes_writes_json_run_files_and_report():
    home, q = grocery_home()
    out, run = home / "out.json", home / "runs" / "run.txt"
    result = shoplens(home, "eval", "--queries", str(q / "all.jsonl"), "--qrels", str(q / "all.qrels"),
                      "--mode", "all", "--baseline", "image", "--json", str(out), "--run-out", str(run),
                      "--measures", "flops", "--quiet", "--name", "grocery")
    assert "| image (baseline) |" in result.output
    data = json.loads(out.read_text())
    assert data["n_queries"] == 70 and INTERFACE_METRICS <= set(data["metrics"])
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p95"]
    assert list(data["modes"]) == ["image", "text", "fused", "lexical", "hybrid"]
    image = data["modes"]["image"]
    assert set(image["by_type"]) == {"text", "image", "combined"}
    # A real model finds the photographed product far above chance (10 of 81 products: recall@10 = 0.12).
    assert image["by_type"]["image"]["metrics"]["recall@10"] > 0.35
    # Lexical cannot answer a photo: counted, scored 0, and said so.
    assert data["modes"]["lexical"]["by_type"]["image"]["unsupported"] == 40
    assert data["modes"]["lexical"]["by_type"]["text"]["metrics"]["recall@10"] > 0.5
    assert set(data["significance"]["p_values"]) == {"text", "fused", "lexical", "hybrid"}
    assert data["measures"]["flops"]["image_gflops"] > data["measures"]["flops"]["text_gflops"] > 0
    # Each mode's TREC run file, re-scored on its own, gives the numbers in the JSON.
    qrels = read_qrels(q / "all.qrels")
    for mode in data["modes"]:
        path = run if mode == "image" else run.with_name(f"run.{mode}.txt")
        first = path.read_text().splitlines()[0].split()
        assert first[1] == "Q0" and first[3] == "1" and first[5] == f"shoplens-{mode}"
        rescored = mean_scores(per_query_scores(qrels, read_run(path)))
        for metric, value in data["modes"][mode]["metrics"].items():
            assert rescored[metric] == pytest.approx(value, abs=1e-6), (mode, metric)
    report = home / "eval" / f"run-{data['run_id']}"
    assert "## Retrieval by mode" in (report / "report.md").read_text()
    assert (report / "recall_at_k.png").stat().st_size > 1000 and (report / "latency.png").stat().st_size > 1000
    assert f"| {data['run_id']} | grocery |" in shoplens(home, "eval", "runs").output


def test_interface_spelling_runs_the_default_mode():
    home, q = grocery_home()
    out = home / "default.json"
    shoplens(home, "eval", "--queries", str(q / "title.jsonl"), "--qrels", str(q / "title.qrels"),
             "--json", str(out), "--measures", "none", "--quiet")
    data = json.loads(out.read_text())
    assert data["mode"] == "default" and data["n_queries"] == 20 and data["metrics"]["recall@10"] > 0.5


def test_strict_refuses_queries_it_cannot_vouch_for():
    home, q = grocery_home()
    model = json.loads((home / "index" / (home / "index" / "CURRENT").read_text().strip() / "manifest.json")
                       .read_text())["model"]
    record = heldout.training_record(heldout.model_folder(model))
    queries = q / "strict.jsonl"
    if record is None:  # the model lists no training products: --strict cannot vouch for any query
        queries.write_text((q / "title.jsonl").read_text())
        expected = "cannot check held-out queries"
    else:  # a query built from a product the model was trained on
        trained = sorted(record.products)[0]
        queries.write_text(json.dumps({"id": "leak", "text": "x", "source": [trained]}) + "\n"
                           + (q / "title.jsonl").read_text())
        expected = "come from products"
    result = shoplens(home, "eval", "--queries", str(queries), "--qrels", str(q / "title.qrels"), "--strict",
                      "--measures", "none", "--quiet", ok=False)
    assert result.exit_code == 1 and expected in result.output
    assert "Traceback" not in result.output


def test_compare_flags_a_real_regression():
    home, q = grocery_home()
    args = ["eval", "--queries", str(q / "photo.jsonl"), "--qrels", str(q / "photo.qrels"), "--mode", "image",
            "--measures", "none", "--quiet", "--json"]
    shoplens(home, *args, str(home / "a.json"))
    shoplens(home, *args, str(home / "b.json"), "--k", "1")  # depth 1: recall@10 can only fall
    a, b = (json.loads((home / f).read_text())["run_id"] for f in ("a.json", "b.json"))
    same = shoplens(home, "eval", "--compare", str(a), str(a), "--fail-on-regression")
    assert "| image | recall@10 |" in same.output and "+0.000" in same.output
    worse = shoplens(home, "eval", "--compare", str(a), str(b), "--fail-on-regression", ok=False)
    assert worse.exit_code == 1 and "regression: image recall@10" in worse.output
    missing = shoplens(home, "eval", "--compare", str(a), "9999", ok=False)
    assert missing.exit_code == 1 and "no evaluation run 9999" in missing.output


def test_bad_inputs_fail_in_one_line():
    home, q = grocery_home()
    bad = q / "bad.jsonl"
    bad.write_text('{"id": "q1", "text": "apple"}\n{"id": "q2"\n')
    result = shoplens(home, "eval", "--queries", str(bad), "--qrels", str(q / "title.qrels"), ok=False)
    assert result.exit_code == 1 and "bad.jsonl:2: not valid JSON" in result.output
    result = shoplens(home, "eval", "--queries", str(q / "title.jsonl"), "--qrels", str(q / "title.qrels"),
                      "--mode", "vector", ok=False)
    assert result.exit_code == 1 and "unknown --mode 'vector'" in result.output
    result = shoplens(home, "eval", "--queries", str(q / "title.jsonl"), "--qrels", str(q / "photo.qrels"), ok=False)
    assert result.exit_code == 1 and "no query in the queries file" in result.output


def test_eval_pages_show_stored_runs():
    from web.app import create_app

    home, q = grocery_home()
    shoplens(home, "eval", "--queries", str(q / "title.jsonl"), "--qrels", str(q / "title.qrels"),
             "--mode", "text,lexical", "--measures", "flops,generation", "--quiet", "--name", "pages")
    client = create_app({"home": home}).test_client()
    listing = client.get("/eval")
    assert listing.status_code == 200 and b"pages" in listing.data
    run_id = reports.list_runs(open_store(f"sqlite:///{home / 'shoplens.db'}"), 1)[0].id
    page = client.get(f"/eval/{run_id}")
    assert page.status_code == 200
    assert b"Retrieval by mode" in page.data and b"lexical" in page.data and b"GFLOPs" in page.data
    assert b"no generated copy in this database yet" in page.data  # the copywriter's provider ran
    png = client.get(f"/eval/{run_id}/recall_at_k.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    assert client.get(f"/eval/{run_id}/report.md").status_code == 404
    assert client.get("/eval/99999").status_code == 404
