"""Stock phrases across a catalog: the 4-word phrases the model has already written in many of its descriptions.

`polish` catches a phrase repeated inside one text. Across a catalog a 135M model falls back on the same few stock
phrases on every page ("a luxury product that offers a", "is a must-have for"): each text reads fine alone and
the catalog reads robotic (Self-BLEU measures it). The book counts, for each phrase, the descriptions that used
it; a model sentence with a phrase already in more than `max_share` of them (and in at least `min_count`) is
dropped before the fact sentences fill the text up (web/copywriter/phrasing.py `fill`), and those pick the
least worn of their templates (`wear`). A stock sentence stays where dropping it would leave a stub the facts
can't write back up (an IKEA hook has a name, a finish and a size): a stock phrase reads better than a page of
twenty words. Phrases made only of the product's own name words and stop words ("the GRUNDTAL wall shelf") are
never stock.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import replace
from typing import Callable, Iterable

from web.copywriter.facts import CopyFacts
from web.copywriter.grounding import sentences, without_sentences
from web.copywriter.polish import STOP_WORDS, Problem

_TOKEN = re.compile(r"[a-z0-9]+")
MAX_SHARE = 0.03
MIN_COUNT = 3


def _phrases(text: str, own: frozenset[str]) -> set[tuple[str, ...]]:
    tokens = _TOKEN.findall(text.lower())
    grams = {tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3)}
    return {g for g in grams if not all(w in own or w in STOP_WORDS for w in g)}


def _own_words(facts: CopyFacts) -> frozenset[str]:
    return frozenset(_TOKEN.findall(f"{facts.brand or ''} {facts.title or ''}".lower()))


class PhraseBook:
    """Phrase → number of descriptions that used it, over the descriptions added so far (thread-safe)."""

    def __init__(self, max_share: float = MAX_SHARE, min_count: int = MIN_COUNT) -> None:
        self.max_share = max_share
        self.min_count = min_count
        self.counts: Counter = Counter()
        self.texts = 0
        self._lock = threading.Lock()

    def add(self, text: str, facts: CopyFacts) -> None:
        """Count the phrases of one finished description."""
        with self._lock:
            self.counts.update(_phrases(text, _own_words(facts)))
            self.texts += 1

    def seed(self, texts: Iterable[tuple[str, CopyFacts]]) -> None:
        """Count descriptions written earlier (the catalog's stored copy), so a new run starts from them."""
        for text, facts in texts:
            self.add(text, facts)

    def wear(self, text: str, facts: CopyFacts) -> float:
        """How often the catalog's descriptions already used the phrases of `text`, per phrase: the fact sentences
        pick the least worn of their templates with it. Per phrase, not summed: a sum favours the template with
        the fewest phrases, whatever their wear."""
        phrases = _phrases(text, _own_words(facts))
        with self._lock:
            return sum(self.counts[g] for g in phrases) / len(phrases) if phrases else 0.0

    def limit(self) -> float:
        return max(self.min_count, self.max_share * self.texts)

    def problems(self, text: str, facts: CopyFacts) -> list[Problem]:
        """One `stock` problem per sentence of `text` that uses a phrase the catalog's descriptions overuse."""
        own = _own_words(facts)
        found = []
        with self._lock:
            limit = self.limit()
            for start, end in sentences(text):
                worn = [g for g in _phrases(text[start:end], own) if self.counts[g] >= limit]
                if worn:
                    most = max(worn, key=lambda g: self.counts[g])
                    found.append(Problem("stock", text[start:end].strip()[:60], start, end,
                                         f"{' '.join(most)!r} is already in {self.counts[most]} of {self.texts} "
                                         "descriptions"))
        return found

    def drop_stock(self, text: str, facts: CopyFacts,
                   enough: Callable[[str], bool] = lambda rest: True) -> tuple[str, list[Problem]]:
        """`text` without its stock sentences, and those sentences as problems marked removed. Where the rest is
        not `enough` (the facts can't write it back up to the length floor), the least worn stock sentences stay,
        as few as will do, and stay marked found."""
        found = sorted(self.problems(text, facts), key=lambda p: self.wear(text[p.start:p.end], facts), reverse=True)
        for n in range(len(found), 0, -1):
            rest = without_sentences(text, [p.start for p in found[:n]])
            if enough(rest):
                return rest, [replace(p, action="removed") for p in found[:n]] + found[n:]
        return text, found
