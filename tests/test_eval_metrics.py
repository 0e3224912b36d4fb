"""Metrics through ranx against numbers worked out by hand, TREC file round trips, and paired tests."""
from __future__ import annotations

import math

import pytest

from indexer.errors import BadInput
from search.evaluation.metrics import compare_to_baseline, mean_scores, paired_test, per_query_scores
from search.evaluation.trec import Query, read_qrels, read_queries, read_run, write_qrels, write_queries, write_run

# q1: relevant a, b; ranked x a y b.  q2: c exact (2), d relevant (1); ranked c z d.  q10: e; nothing returned.
QRELS = {"q1": {"a": 1, "b": 1, "x": 0}, "q2": {"c": 2, "d": 1}, "q10": {"e": 1}}
RUN = {"q1": [("x", 0.9), ("a", 0.8), ("y", 0.7), ("b", 0.6)], "q2": [("c", 0.5), ("z", 0.5), ("d", 0.1)]}
L3, L4, L5 = math.log2(3), math.log2(4), math.log2(5)
BY_HAND = {
    "q1": {"recall@1": 0.0, "recall@5": 1.0, "mrr@10": 1 / 2, "ndcg@10": (1 / L3 + 1 / L5) / (1 + 1 / L3),
           "map": (1 / 2 + 2 / 4) / 2},
    "q2": {"recall@1": 1 / 2, "recall@5": 1.0, "mrr@10": 1.0, "ndcg@10": (2 + 1 / L4) / (2 + 1 / L3),
           "map": (1 / 1 + 2 / 3) / 2},
    "q10": {"recall@1": 0.0, "recall@5": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0, "map": 0.0},
}


def test_per_query_metrics_match_hand_computation():
    scores = per_query_scores(QRELS, RUN)
    for qid, expected in BY_HAND.items():
        for metric, value in expected.items():
            assert scores[metric][qid] == pytest.approx(value, abs=1e-9), (qid, metric)


def test_means_match_hand_computation():
    means = mean_scores(per_query_scores(QRELS, RUN))
    assert means["recall@1"] == pytest.approx(1 / 6)
    assert means["recall@5"] == pytest.approx(2 / 3)
    assert means["mrr@10"] == pytest.approx(0.5)
    assert means["map"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + (1 + 2 / 3) / 2) / 3)


def test_engine_order_wins_over_tied_scores():
    # c and z tie at 0.5: the engine put z first, so the relevant c is at rank 2.
    scores = per_query_scores({"q": {"c": 1}}, {"q": [("z", 0.5), ("c", 0.5)]})
    assert scores["mrr@10"]["q"] == pytest.approx(0.5)


def test_queries_without_relevant_products_are_not_scored():
    scores = per_query_scores({"q1": {"a": 1}, "q2": {"b": 0}}, {"q1": [("a", 1.0)], "q2": [("b", 1.0)]})
    assert set(scores["recall@1"]) == {"q1"}


def test_a_run_that_retrieved_nothing_scores_zero():
    scores = per_query_scores(QRELS, {"q1": [], "q2": []})
    assert all(v == 0.0 for per_q in scores.values() for v in per_q.values()) and set(scores["map"]) == set(QRELS)


def test_paired_tests_separate_a_clear_win_from_noise():
    base = {f"q{i}": 0.2 for i in range(40)}
    better = {f"q{i}": 0.2 + (0.5 if i % 4 else 0.0) for i in range(40)}
    assert paired_test(base, better, "student") < 0.001
    assert paired_test(base, better, "fisher") < 0.01
    assert paired_test(base, dict(base), "student") == 1.0
    p = compare_to_baseline({"a": {"mrr@10": base}, "b": {"mrr@10": better}}, "a", "student", ["mrr@10"])
    assert p["b"]["mrr@10"] < 0.001 and "a" not in p


def test_trec_files_round_trip(tmp_path):
    write_qrels(tmp_path / "qrels.txt", QRELS)
    assert read_qrels(tmp_path / "qrels.txt") == QRELS
    write_run(tmp_path / "run.txt", RUN, "my run")
    lines = (tmp_path / "run.txt").read_text().splitlines()
    assert lines[0] == "q1 Q0 x 1 0.900000 my_run"
    assert read_run(tmp_path / "run.txt") == RUN
    photo = tmp_path / "photos" / "p.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    queries = [Query("t1", text="red dress", filters={"gender": "Women"}, kind="title", source=("42",)),
               Query("p1", image=photo), Query("c1", text="in blue", image=photo)]
    write_queries(tmp_path / "q" / "queries.jsonl", queries)
    assert '"image": "../photos/p.jpg"' in (tmp_path / "q" / "queries.jsonl").read_text()
    back = read_queries(tmp_path / "q" / "queries.jsonl")
    assert back == [Query("t1", "red dress", None, {"gender": "Women"}, "title", ("42",)),
                    Query("p1", image=photo.resolve()), Query("c1", "in blue", photo.resolve())]
    assert [q.type for q in back] == ["text", "image", "combined"]


@pytest.mark.parametrize("line, message", [
    ('{"id": "q1"', "not valid JSON"),
    ('{"text": "x"}', "needs an \"id\""),
    ('{"id": "q 1", "text": "x"}', "without spaces"),
    ('{"id": "q1"}', "neither"),
    ('{"id": "q1", "image": "missing.jpg"}', "not found"),
    ('{"id": "q1", "text": "x"}\n{"id": "q1", "text": "y"}', "duplicate"),
])
def test_bad_queries_fail_with_the_line(tmp_path, line, message):
    path = tmp_path / "queries.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BadInput, match=message):
        read_queries(path)


def test_bad_qrels_fail_with_the_line(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 a 1\nq1 0 b high\n")
    with pytest.raises(BadInput, match=r"qrels.txt:2: relevance 'high'"):
        read_qrels(path)


def test_judged_queries_missing_from_the_queries_file_are_not_scored():
    """A qrels file for 3 queries run with a queries file of 2: the mean is over the 2 that were asked."""
    from search.evaluation.runner import evaluate

    def backend(query: Query, mode: str | None, k: int) -> list[tuple[str, float]]:
        return RUN.get(query.id, [])[:k]

    result = evaluate(backend, [Query(id="q1", text="one"), Query(id="q2", text="two")], QRELS, ["text"],
                      progress=False)
    per_query = result.results["text"].per_query
    assert set(per_query["mrr@10"]) == {"q1", "q2"}
    assert mean_scores(per_query)["mrr@10"] == pytest.approx((BY_HAND["q1"]["mrr@10"] + BY_HAND["q2"]["mrr@10"]) / 2)
