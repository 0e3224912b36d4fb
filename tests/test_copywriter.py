"""Copywriter on real Myntra products with the real SmolLM2-135M-Instruct (packaged GGUF, converted once).

The model loads once per test session (converted into $SHOPLENS_CACHE, default ~/.cache/shoplens); fast tests
run only a few short generations. Slow: batch resume after SIGKILL of a real `shoplens generate` process.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from indexer.config import load_settings
from indexer.store import CopyVersion, Product
from indexer_data import facts_store, myntra_products
from indexer.errors import ConfigError
from web.copywriter.generate import Copywriter, RowSampling, complete
from web.copywriter.half_weights import HalfWeightLinear, half_weights_supported
from web.copywriter.facts import VISUAL_GROUPS, CopyFacts, VisualReader, facts_from_product
from web.copywriter.grounding import FactIndex, extract_claims, remove_unsupported, unsupported
from web.copywriter.llm import load_llm
from web.copywriter.prompt import CopyOptions, render
from web.copywriter.service import CopyService

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SHOPLENS_CACHE") or Path.home() / ".cache" / "shoplens")
KEY = "test-key-123"
# Real products: a brown Red Tape leather shoe (men), a Newfeel mesh sneaker (unisex), a Quechua T-shirt.
SHOE, SNEAKER, TSHIRT = "2374", "1635", "1563"
BRANDS = ["Red Tape", "Woodland", "Nike", "Newfeel", "Quechua", "Puma"]
SHORT = CopyOptions(length="short", retries=1)


@pytest.fixture(scope="session", autouse=True)
def shared_cache():
    """Every temp home shares one converted model, so the GGUF is dequantised once, not per test."""
    old = os.environ.get("SHOPLENS_CACHE")
    os.environ["SHOPLENS_CACHE"] = str(CACHE)
    yield
    if old is None:
        os.environ.pop("SHOPLENS_CACHE", None)


@pytest.fixture(scope="session")
def rows():
    chosen = myntra_products([SHOE, SNEAKER, TSHIRT])
    return chosen + [r for r in myntra_products(n=9, stride=97) if r.id not in {SHOE, SNEAKER, TSHIRT}][:8]


@pytest.fixture()
def home(tmp_path, rows):
    url, store = facts_store(tmp_path / "shoplens.db", rows)
    return tmp_path, url, store


@pytest.fixture(scope="session")
def llm():
    return load_llm(cache_dir=CACHE)


def _facts(store, pid: str) -> CopyFacts:
    with store.session() as s:
        return facts_from_product(s.get(Product, pid))


# --- grounding check (no model) -------------------------------------------------------------------------------

def test_planted_unsupported_claims_are_flagged_and_true_ones_accepted(home):
    _, _, store = home
    index = FactIndex(_facts(store, SHOE), BRANDS)
    text = ("These brown leather shoes from Red Tape are made for men. "
            "They come with a size 20 buckle. Also in black, by Woodland, for women.")
    claims = extract_claims(text, index)
    bad = {(c.kind, c.text) for c in claims if not c.supported}
    good = {(c.kind, c.text) for c in claims if c.supported}
    assert {("size", "size 20"), ("colour", "black"), ("brand", "Woodland"), ("gender", "women")} <= bad
    assert {("colour", "brown"), ("material", "leather"), ("brand", "Red Tape"), ("gender", "men"),
            ("category", "shoes")} <= good
    assert all(text[c.start:c.end] == c.text for c in claims)  # spans are exact, for highlighting


def test_removal_keeps_only_supported_sentences(home):
    _, _, store = home
    index = FactIndex(_facts(store, SHOE), BRANDS)
    text = "These brown leather shoes suit men. It has a size 20 buckle. Pair them with black jeans."
    cleaned, marked = remove_unsupported(text, extract_claims(text, index))
    assert cleaned == "These brown leather shoes suit men. Pair them with black jeans."  # styling is not a claim
    assert [c.action for c in marked if not c.supported] == ["removed"]
    assert unsupported(cleaned, index) == []


def test_numbers_and_availability_claims_need_facts(home):
    _, _, store = home
    facts = _facts(store, SHOE)
    index = FactIndex(facts, BRANDS)
    price = f"{facts.price:g}"
    claims = extract_claims(f"Only {price} INR, down from 4999. Available in a range of colours.", index)
    verdict = {c.text: c.supported for c in claims}
    assert verdict[price] is True and verdict["4999"] is False
    assert any(c.kind == "availability" and not c.supported for c in claims)


def test_visual_attributes_only_fill_gaps_above_threshold(home):
    from indexer.model.encoder import load_encoder

    _, _, store = home
    reader = VisualReader(load_encoder(cache_dir=CACHE), threshold=0.0)
    facts = _facts(store, TSHIRT)
    with store.session() as s:
        ref = s.get(Product, TSHIRT).image_ref
    visual = reader.read(facts, reader.image_vector(ref))
    names = {v.name for v in visual}
    assert "colour" not in names and "pattern" not in names  # the database already says Blue / Solid
    assert all(0.0 <= v.confidence <= 1.0 for v in visual)
    strict = VisualReader(reader.encoder, threshold=1.01).read(facts, reader.image_vector(ref))
    assert strict == []


def test_service_facts_carry_the_image_and_what_the_encoder_read_in_it(home):
    path, url, store = home
    with store.session() as s:
        product = s.get(Product, TSHIRT)
        product.colour = None  # a gap the image can fill, once the title does not name the colour either
        product.title = " ".join(w for w in product.title.split() if w.lower() not in VISUAL_GROUPS[0][2])
        ref = product.image_ref
    service = CopyService(load_settings(home=path, db_url=url), store=store, visual_threshold=0.0)
    [facts] = service.facts([TSHIRT])
    plain = _facts(store, TSHIRT)
    assert facts.image == plain.image == ref
    assert [v.name for v in facts.visual] == ["colour"]
    assert facts.visual == service.reader.read(plain, service.reader.image_vector(ref))
    assert replace(facts, visual=[]) == plain  # the image only adds: the database facts stay as stored


# --- generation with the real model -----------------------------------------------------------------------------

def test_generated_copy_is_checked_stored_and_source_untouched(home, llm):
    path, url, store = home
    before = {p: _facts(store, p).description for p in (SHOE, SNEAKER)}
    service = CopyService(load_settings(home=path, db_url=url), store=store, vision=False)
    stored = service.generate([SHOE, SNEAKER], SHORT, author="tester")
    for draft, version in stored:
        index = service.writer.index(_facts(store, draft.product_id))
        assert draft.text.strip() and unsupported(draft.text, index) == []
        assert version.status == "draft" and version.author == "tester" and version.model == "smollm2-135m"
        assert version.prompt and version.params["length"] == "short" and version.created_at is not None
    with store.session() as s:
        assert {p: s.get(Product, p).description for p in before} == before
        assert s.query(CopyVersion).count() == 2


def test_row_sampling_draws_from_the_nucleus_in_proportion():
    """Gumbel-max over logits/T is a draw from softmax(logits/T); tokens past top_p are never drawn."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -6.0]])
    draws = Counter(int(RowSampling(1.0, [seed], top_p=0.99)(None, logits.clone()).argmax()) for seed in range(4000))
    nucleus = torch.softmax(logits[0, :3], dim=0)
    assert draws[3] == 0 and set(draws) == {0, 1, 2}
    for token in range(3):
        assert abs(draws[token] / 4000 - float(nucleus[token])) < 0.03


def test_sampled_copy_depends_on_the_product_seed_not_the_batch(llm):
    """A product's sampled text is the same alone or beside another row, and another seed writes another text."""
    prompt = render(llm.tokenizer, [{"role": "user", "content": "Describe a red cotton T-shirt in two sentences."}])
    alone = complete(llm, [prompt], [set()], 30, temperature=1.0, seeds=[7])
    paired = complete(llm, [prompt, prompt], [set(), set()], 30, temperature=1.0, seeds=[11, 7])
    assert paired[1] == alone[0]
    assert paired[0] != paired[1]


def test_fp16_weights_write_the_fp32_models_greedy_text(home, llm, monkeypatch):
    """The default fp16 weights swap every linear layer and change no greedy token of a real product's prompt;
    fp32 stays one setting away, and a bad setting is one clear error."""
    _, _, store = home
    fp32 = load_llm(cache_dir=CACHE, weights="fp32")
    assert half_weights_supported()  # x86 torch builds carry fbgemm; without it the model would stay fp32
    assert not any(isinstance(m, HalfWeightLinear) for m in fp32.model.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in llm.model.modules())
    assert sum(isinstance(m, HalfWeightLinear) for m in llm.model.modules()) == \
        sum(isinstance(m, torch.nn.Linear) for m in fp32.model.modules())
    prompt = Copywriter(llm).job(_facts(store, SHOE), SHORT).prompt
    assert complete(llm, [prompt], [set()], 60) == complete(fp32, [prompt], [set()], 60)
    ids = llm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        half, full = llm.model(ids).logits[0, -1], fp32.model(ids).logits[0, -1]
    assert (half - full).abs().max() < 0.01 * (full.max() - full.min())
    monkeypatch.setenv("SHOPLENS_LLM_WEIGHTS", "int3")
    with pytest.raises(ConfigError, match="llm_weights"):
        load_settings()
    with pytest.raises(ConfigError, match="llm_weights must be one of fp16, fp32, not 'int3'"):
        load_llm("smollm2-135m", cache_dir=CACHE, weights="int3")


def test_cli_generate_json(home, llm):
    path, url, _ = home
    from web.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(path), "--db", url, "generate", "--product", TSHIRT,
                                      "--length", "short", "--no-vision", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"product_id", "text", "unsupported_claims", "model"} <= set(out)
    assert out["product_id"] == TSHIRT and out["unsupported_claims"] == [] and out["text"]


def test_cli_unknown_product_is_one_line_error(home):
    path, url, _ = home
    from web.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(path), "--db", url, "generate", "--product", "nope"])
    assert result.exit_code == 1 and "not found" in result.output and "Traceback" not in result.output


# --- API ------------------------------------------------------------------------------------------------------------

@pytest.fixture()
def client(home):
    from web.app import create_app
    from web.services import services

    path, url, store = home
    app = create_app({"home": path, "db_url": url, "api_key": KEY})
    services(app).copy = CopyService(app.config["SHOPLENS"], store=store, vision=False)
    return app.test_client()


def _auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_generate_stream_edit_approve_discard(client, llm):
    assert client.post(f"/api/v1/products/{SHOE}/copy", json={"length": "short"}).status_code == 401
    assert client.post(f"/api/v1/products/{SHOE}/copy", json={}, headers=_auth("wrong")).status_code == 401
    assert client.post(f"/api/v1/products/{SHOE}/copy", json={"length": "huge"}, headers=_auth()).status_code == 400
    assert client.post("/api/v1/products/nope/copy", json={}, headers=_auth()).status_code == 404

    res = client.post(f"/api/v1/products/{SHOE}/copy?stream=1", json={"length": "short"}, headers=_auth())
    assert res.status_code == 200 and res.mimetype == "text/event-stream"
    events = [block for block in res.get_data(as_text=True).split("\n\n") if block]
    assert events[0].startswith("event: token") and events[-1].startswith("event: done")
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert done["version"] == 1 and done["status"] == "draft" and done["unsupported_claims"] == []

    edit = client.post(f"/api/v1/products/{SHOE}/copy/1/edit", headers=_auth(),
                       json={"text": "Brown leather shoes by Red Tape with a size 20 buckle."})
    assert edit.status_code == 201
    v2 = edit.get_json()
    assert v2["version"] == 2 and v2["edited"] and [c["text"] for c in v2["unsupported_claims"]] == ["size 20"]
    assert client.post(f"/api/v1/products/{SHOE}/copy/2/approve", headers=_auth()).status_code == 409
    assert client.post(f"/api/v1/products/{SHOE}/copy/2/approve").status_code == 401
    ok = client.post(f"/api/v1/products/{SHOE}/copy/1/approve", headers=_auth(), json={"author": "ana"})
    assert ok.status_code == 200 and ok.get_json()["status"] == "approved"
    assert client.post(f"/api/v1/products/{SHOE}/copy/2/discard", headers=_auth()).get_json()["status"] == "discarded"
    assert client.post(f"/api/v1/products/{SHOE}/copy/9/approve", headers=_auth()).status_code == 404

    listing = client.get(f"/api/v1/products/{SHOE}/copy").get_json()
    assert [v["status"] for v in listing["versions"]] == ["discarded", "approved"]
    assert listing["source_description"].startswith("Composition: Leather")
    found = client.get("/api/v1/copy/products?q=Red+Tape&status=approved").get_json()["products"]
    assert [p["id"] for p in found] == [SHOE]


def test_api_writes_refused_without_server_key(home):
    from web.app import create_app

    path, url, _ = home
    app = create_app({"home": path, "db_url": url, "api_key": None})
    res = app.test_client().post(f"/api/v1/products/{SHOE}/copy/1/approve", headers=_auth())
    assert res.status_code == 403 and res.get_json()["error"]["code"] == "writes_disabled"


def test_api_check_and_bad_bodies(client):
    res = client.post(f"/api/v1/products/{SHOE}/copy/check", json={"text": "Black shoes by Clarks."})  # a brand of another product
    assert {c["text"] for c in res.get_json()["unsupported_claims"]} == {"Black", "Clarks"}
    assert client.post(f"/api/v1/products/{SHOE}/copy/check", data="not json",
                       content_type="application/json").status_code == 400
    assert client.post(f"/api/v1/products/{SHOE}/copy/1/edit", headers=_auth(), json={"text": ""}).status_code == 400
    assert client.get("/copywriter").status_code == 200


# --- batch --------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_batch_resumes_after_sigkill_and_skips_approved(home, rows):
    path, url, store = home
    ids = [r.id for r in rows[:6]]
    ids_file = path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    with store.session() as s:  # one product already has approved copy: the batch must leave it alone
        s.add(CopyVersion(product_id=ids[0], version=1, text="Approved by a person.", model="human", prompt="",
                          status="approved"))
    cmd = [sys.executable, "-m", "web.cli", "--home", str(path), "--db", url, "generate", "--ids-file",
           str(ids_file), "--length", "short", "--batch-size", "1", "--no-vision", "--no-progress"]
    env = {**os.environ, "SHOPLENS_CACHE": str(CACHE)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def written() -> int:
        with sqlite3.connect(path / "shoplens.db") as db:
            return db.execute("select count(*) from copy_versions where model != 'human'").fetchone()[0]

    deadline = time.time() + 1800  # a loaded 2-core box needs minutes per product
    while written() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = written()
    assert 1 <= partial < 5, "the first run was killed mid-batch, after writing at least one product"
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with sqlite3.connect(path / "shoplens.db") as db:
        per_product = dict(db.execute("select product_id, count(*) from copy_versions group by product_id"))
    assert per_product == {pid: 1 for pid in ids}  # nothing twice, the approved product untouched
    assert f"wrote {len(ids) - 1 - partial} drafts" in rerun.stderr


@pytest.mark.slow
def test_approved_copy_reaches_the_lexical_index(tmp_path):
    """Approve copy with a word no product has, publish-copy, and the new version's BM25 index finds it."""
    from indexer.lexical import LexicalIndex
    from indexer.store import open_store
    from indexer.vectors import current_version
    from indexer_data import MYNTRA_MAP, index_catalog, myntra_rows, write_csv
    from web.cli import cli

    rows, fields = myntra_rows(12, with_hr=12)
    index_catalog(tmp_path, write_csv(tmp_path / "c.csv", rows, fields), MYNTRA_MAP)
    before = current_version(tmp_path / "index")
    settings = load_settings(home=tmp_path)
    store = open_store(settings.db_url)
    pid = rows[3]["id"]
    with store.session() as s:
        key = s.get(Product, pid).key
        s.add(CopyVersion(product_id=pid, version=1, text="A zorblax favourite.", model="human", prompt="",
                          status="approved"))
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "publish-copy"])
    assert result.exit_code == 0 and "published" in result.output, result.output
    after = current_version(tmp_path / "index")
    assert after != before
    hits = LexicalIndex.load(tmp_path / "index" / after / "lexical").search("zorblax", k=3)
    assert hits and hits[0][0] == key
    again = CliRunner().invoke(cli, ["--home", str(tmp_path), "publish-copy"])
    assert "already has the approved copy" in again.output
