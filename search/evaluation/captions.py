"""Caption measures (bench/vqa.py, README): does a caption find its own product, does it agree with the photo,
and how close is it to the catalog's title.

- `recall_at_k`: the caption as a text query against the products' image vectors; a hit when its own product
  is in the top k.
- `clip_score`: CLIPScore (Hessel et al. 2021) with our encoder: 100 × w × max(cos(text, image), 0), w = 2.5.
- `corpus_bleu`: corpus BLEU-4 (Papineni et al. 2002: clipped n-gram precisions, geometric mean, brevity
  penalty) over lower-cased word tokens, with add-one smoothing for n > 1 (so a short caption with no 4-gram
  match scores low, not zero); sacrebleu is not a dependency of ShopLens.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

CLIPSCORE_W = 2.5


def recall_at_k(text_vectors: np.ndarray, image_vectors: np.ndarray, own: Sequence[int], k: int = 10) -> float:
    """Share of texts whose own image (row `own[i]` of `image_vectors`) ranks in the top k by cosine."""
    sims = text_vectors @ image_vectors.T
    own_scores = sims[np.arange(len(own)), np.asarray(own)]
    ranks = (sims > own_scores[:, None]).sum(axis=1)
    return float(np.mean(ranks < k)) if len(own) else 0.0


def clip_score(text_vectors: np.ndarray, image_vectors: np.ndarray) -> float:
    """Mean CLIPScore of paired (unit) text and image vectors."""
    cos = np.sum(text_vectors * image_vectors, axis=1)
    return float(np.mean(100.0 * CLIPSCORE_W * np.clip(cos, 0.0, None))) if len(cos) else 0.0


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU-4 of hypotheses against one reference each, on a 0-100 scale."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = _tokens(hyp), _tokens(ref)
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_n + 1):
            hc, rc = _ngrams(h, n), _ngrams(r, n)
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or matches[0] == 0:
        return 0.0
    logs = [math.log(matches[0] / totals[0])]
    logs += [math.log((matches[n] + 1) / (totals[n] + 1)) for n in range(1, max_n)]
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(sum(logs) / max_n)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
