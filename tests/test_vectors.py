"""Index type choice, build and recall, atomic versioned publishing, rollback, and the reloading reader."""
from __future__ import annotations

import json
import os

import faiss
import numpy as np
import pytest

from indexer.errors import BudgetTooSmall, NoIndex, NotFound
from indexer.lexical import LexicalIndex, build_lexical
from indexer.vectors import (EXACT_MAX_BYTES, CompressedIndex, IndexReader, build_index, choose_index_type,
                             current_version, fuse_vectors, publish_version, read_manifest, recall_at_k, rollback, write_index)

GB = 1 << 30


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Normalised vectors in clusters, shaped like product embeddings (many near-duplicates per category)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


@pytest.mark.parametrize("n,dim,budget,shares,kind,served", [
    (2_500, 1920, GB, 1, "flat", None),  # the demo catalog: a 18 MB scan
    (EXACT_MAX_BYTES // (4 * 512), 512, GB, 1, "flat", None),
    (EXACT_MAX_BYTES // (4 * 512) + 1, 512, GB, 1, "hnsw", None),
    (44_441, 1920, 2 * GB, 3, "hnsw", None),  # all of Myntra under the default budget: unchanged
    (1_000_000, 1920, 2 * GB, 3, "ivf", 512),  # a million products: 512-d SQ8 codes
    (1_000_000, 1920, 400 << 20, 3, "ivf", 128),
    (1_000_000, 384, 2 * GB, 3, "ivf", 384),  # a 384-d kind keeps its dimensions, codes a byte each
    (2_000_000, 1920, 120 << 20, 3, "ivf", 128),  # PQ codes at the bottom
    (20_000, 384, 10 << 20, 1, "ivf", 384),  # fast enough for exact but over budget
])
def test_choice_is_a_pure_function_of_size_and_budget(n, dim, budget, shares, kind, served):
    plan = choose_index_type(n, dim, budget, shares=shares)
    assert plan.type == kind and plan.reason
    assert plan == choose_index_type(n, dim, budget, shares=shares)
    assert plan.memory_bytes <= budget // shares
    if served:
        assert plan.params["dim"] == served and plan.params["rerank"] >= 10


def test_smaller_budget_never_picks_a_larger_index():
    sizes = [choose_index_type(1_000_000, 1920, mb << 20, shares=3).memory_bytes for mb in (8000, 2048, 800, 200, 60)]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("n,dim", [(1_000_000, 1920), (200, 1920), (5_000, 1920)])
def test_budget_too_small_names_the_smallest_that_works(n, dim):
    with pytest.raises(BudgetTooSmall) as caught:
        choose_index_type(n, dim, 1 << 20, shares=3)
    needed = int(caught.value.hint.rstrip(".").split()[-1])
    assert needed > 1
    choose_index_type(n, dim, needed << 20, shares=3)  # that budget works
    with pytest.raises(BudgetTooSmall):
        choose_index_type(n, dim, (needed - 2) << 20, shares=3)


@pytest.mark.parametrize("exact_max_bytes,budget,kind,min_recall", [
    (None, GB, "flat", 1.0), (1 << 16, GB, "hnsw", 0.95), (1 << 16, 3 << 20, "ivf", 0.9)])
def test_built_index_searches_by_key_with_measured_recall(exact_max_bytes, budget, kind, min_recall, tmp_path):
    x = _clustered(12_000, 64)
    keys = np.arange(len(x), dtype=np.int64) * 10 + 7  # ids are product keys, not row numbers
    plan = choose_index_type(len(x), 64, budget, **({"exact_max_bytes": exact_max_bytes} if exact_max_bytes else {}))
    assert plan.type == kind
    index = build_index(x, keys, plan)
    recall = recall_at_k(index, x, keys)
    assert recall >= min_recall
    _, found = index.search(x[:5], 1)
    assert list(found[:, 0]) == list(keys[:5])
    if kind == "ivf":  # saved and loaded again, memory-mapped, it answers the same
        files = index.save(tmp_path, "image")
        loaded = CompressedIndex.load(tmp_path, {**files, "params": plan.params}, keys)
        assert isinstance(loaded.store, np.memmap)
        assert recall_at_k(loaded, x, keys) >= min_recall  # it re-ranks on the float16 copy
        assert list(loaded.search(x[:5], 1)[1][:, 0]) == list(keys[:5])
        assert np.allclose(loaded.reconstruct_batch(keys[[3, 1]]), x[[3, 1]], atol=2e-3)


def test_fused_vector_is_a_normalised_blend():
    a, b = _clustered(4, 16, 1), _clustered(4, 16, 2)
    f = fuse_vectors(a, b)
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(f * a, axis=1) > 0) and np.all(np.sum(f * b, axis=1) > 0)


def _writer(x: np.ndarray, keys: np.ndarray, tag: str):
    def write(staging):
        write_index(build_index(x, keys, choose_index_type(len(x), x.shape[1], GB)), staging / "fused.faiss")
        return {"model": "test", "dim": x.shape[1], "count": len(x), "tag": tag,
                "kinds": {"fused": {"file": "fused.faiss", "type": "flat", "recall_at_10_vs_exact": 1.0}}}
    return write


def test_publish_switches_current_atomically_keeps_previous_and_rolls_back(tmp_path):
    index_dir = tmp_path / "index"
    x = _clustered(300, 32)
    keys = np.arange(300, dtype=np.int64) + 1
    with pytest.raises(NoIndex):
        IndexReader(index_dir).current()
    v1, _ = publish_version(index_dir, _writer(x, keys, "one"))
    v2, m2 = publish_version(index_dir, _writer(x[:200], keys[:200], "two"))
    v3, m3 = publish_version(index_dir, _writer(x[:100], keys[:100], "three"))
    assert (v1, v2, v3) == ("v000001", "v000002", "v000003")
    assert current_version(index_dir) == v3 and m3["previous"] == v2
    assert sorted(p.name for p in index_dir.iterdir()) == ["CURRENT", v2, v3]  # v1 pruned, v2 kept for rollback
    assert rollback(index_dir) == (v3, v2)
    assert current_version(index_dir) == v2
    with pytest.raises(NotFound, match="no previous version"):
        rollback(index_dir)  # v2's previous (v1) was pruned


def test_failed_build_leaves_current_untouched(tmp_path):
    index_dir = tmp_path / "index"
    x = _clustered(50, 8)
    publish_version(index_dir, _writer(x, np.arange(50), "good"))

    def crash(staging):
        (staging / "fused.faiss").write_bytes(b"half")
        raise RuntimeError("killed mid-build")
    with pytest.raises(RuntimeError):
        publish_version(index_dir, crash)
    assert current_version(index_dir) == "v000001"
    assert sorted(p.name for p in index_dir.iterdir()) == ["CURRENT", "v000001"]
    # A SIGKILL leaves a staging folder behind: the next publish removes it.
    (index_dir / ".staging-leftover").mkdir()
    publish_version(index_dir, _writer(x, np.arange(50), "next"))
    assert not any(p.name.startswith(".staging") for p in index_dir.iterdir())


def test_reader_memory_maps_and_reloads_when_current_changes(tmp_path):
    index_dir = tmp_path / "index"
    x = _clustered(400, 32)
    keys = np.arange(400, dtype=np.int64) + 1000
    publish_version(index_dir, _writer(x, keys, "one"))
    reader = IndexReader(index_dir)
    first = reader.current()
    assert reader.current() is first  # no change, no reload
    scores, found = first.search("fused", x[3], 5)
    assert found[0, 0] == 1003 and scores.shape == (1, 5)
    publish_version(index_dir, _writer(x[:10], keys[:10], "two"))
    second = reader.current()
    assert second.name == "v000002" and second.index("fused").ntotal == 10
    assert first.index("fused").ntotal == 400  # a request holding the old version keeps working
    with pytest.raises(NotFound):
        second.index("image")
    manifest = json.loads((index_dir / "v000002" / "manifest.json").read_text())
    assert manifest == read_manifest(index_dir, "v000002") and manifest["previous"] == "v000001"
    assert faiss.read_index(str(index_dir / "v000002" / "fused.faiss"), faiss.IO_FLAG_MMAP).ntotal == 10
    assert os.path.getsize(index_dir / "CURRENT") == len("v000002\n")


def test_lexical_index_finds_words_and_maps_keys(tmp_path):
    docs = ["Nike Men Blue Running Shoes", "Puma Women Red Dress", "Adidas Kids Blue Tshirt", "Apple juice 1 l"]
    keys = [11, 22, 33, 44]
    assert build_lexical(keys, docs, tmp_path / "lex")["documents"] == 4
    lex = LexicalIndex.load(tmp_path / "lex")
    hits = lex.search("blue running shoes", k=3)
    assert hits[0][0] == 11 and {k for k, _ in hits} == {11, 33}
    assert lex.search("zzzz unknown", k=3) == [] and lex.search("", k=3) == []
    assert [k for k, _ in lex.search("juice", k=10)] == [44]
    build_lexical([], [], tmp_path / "empty")
    assert LexicalIndex.load(tmp_path / "empty").search("shoes") == []
