"""The caption measures (search.evaluation.captions) on hand-checked cases."""
from __future__ import annotations

import numpy as np
import pytest

from search.evaluation.captions import clip_score, corpus_bleu, recall_at_k


def test_bleu_is_100_for_identical_text_and_0_without_shared_words():
    assert corpus_bleu(["red cotton shirt for men"], ["Red cotton shirt for men"]) == pytest.approx(100.0)
    assert corpus_bleu(["blue jeans"], ["red cotton shirt"]) == 0.0


def test_bleu_ranks_closer_captions_higher_and_penalises_brevity():
    ref = ["Nike Men Red Printed Tshirts"]
    close, far = corpus_bleu(["Men Red Printed Tshirts"], ref), corpus_bleu(["Red Tshirts"], ref)
    assert 0 < far < close < 100
    # Unigram precision 1 and no n-gram of higher order is shared: only the smoothing keeps it above 0.
    assert corpus_bleu(["Tshirts"], ref) < far


def test_recall_at_k_counts_own_image_in_the_top_k():
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[1, 0, 0], [1, 0.1, 0], [0, 0, 1]], dtype=np.float32)
    assert recall_at_k(texts, images, [0, 1, 2], k=1) == pytest.approx(2 / 3)
    assert recall_at_k(texts, images, [0, 1, 2], k=2) == 1.0


def test_clip_score_is_100_w_cos_clipped_at_zero():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert clip_score(a, b) == pytest.approx((250.0 + 0.0) / 2)
