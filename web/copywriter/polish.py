"""Merchandiser checks: robotic text the grounding check lets through, found and, where possible, repaired.

A grounded text can still be unusable: "a luxurious and luxurious product", "The product's brand is Marvel and the
product's product category is Baby Care", a brand written "Red tape" or "Marvell". `problems` finds four kinds:
- `repeat`: a word doubled ("luxurious and luxurious": repaired to one) or a 4-word phrase written twice (the
  later sentence is dropped);
- `field_prose`: the catalog's field names read out as prose ("the product's product category is", "usage is
  casual", "falls under the category"), or the prompt's instructions read back ("in flowing sentences"): the
  sentence is dropped;
- `name`: a case or spacing variant of a catalog name ("red tape", "RedTape", "Grundtal" for GRUNDTAL: repaired
  to the catalog's spelling), a mangled one ("Marvell", "GRUNTAL") or an invented one (a capitalised word inside a
  sentence that no fact has: "a material called Tiny Tins", "Stainless Stout"): the sentence is dropped;
- `garbled`: a sentence that is not language (stuttered letters such as "thththofththeth", runs of quotes and
  commas): dropped.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from difflib import SequenceMatcher

from web.copywriter.facts import CopyFacts, PRINTED_LABEL
from web.copywriter.grounding import sentences, without_sentences

_WORD = re.compile(r"[A-Za-zÀ-ÿ][\w'’-]*")
_DOUBLED = re.compile(r"\b([A-Za-z]{3,})\b(?:\s*,\s*|\s+(?:and|or|&)\s+(?:\w+\s+)?|\s+)\1\b", re.I)
_FIELD = r"(?:product\s+)?(?:categor(?:y|ies)|brand(?:\s+name)?|colou?r|price|gender|type|name|title|attributes?|usage)"
_FIELD_PROSE = [re.compile(p, re.I) for p in (
    rf"\b(?:the|this|its|our)\s+(?:product|item)(?:'s|’s|s')?\s+{_FIELD}\b",
    r"\b(?:(?:product|sub|master)[- ]?categor(?:y|ies)|categor(?:y|ies)|brand name|article type|base colou?r"
    r"|usage|gender)\s+(?:is|are|was|of this|:)\s",
    r"\b(?:categori[sz]ed|classified)\s+(?:as|under|in)\b|\bfalls?\s+(?:under|into|in)\s+(?:the\s+)?\w+(?:\s+\w+)?"
    r"\s+categor",
    r"(?:^|[.!?]\s+|\n)\s*(?:for|usage|colou?r|price|brand|category|fit|pattern|fabric|occasion|product)\s*:",
    rf"\b{re.escape(PRINTED_LABEL)}\b",
    r"\b(?:made|manufactured|produced|brought to you) by the (?:company|brand|manufacturer)\b",
    # the prompt's instructions read back ("The product description is in flowing sentences")
    r"\bflowing sentences\b|\b(?:the|this) (?:product )?description (?:above|below|is|uses)\b|\bin this order\b"
    r"|\bhow this (?:store|type) describes?\b|\bcopy the style\b|\bnever their details\b"
    # the model talking about its own writing ("Here's a rewritten version ...", "I made the following changes")
    r"|\brewritten version\b|\bthe following changes\b|\brequested details\b|\boriginal sentences?\b"
    r"|\bI (?:have )?(?:made|added|changed|rewrote|removed|written|created)\b"
    # the system prompt read back ("It's written in a friendly tone, using only facts and figures")
    r"|\bwritten in an? (?:\w+ )?(?:and \w+ )?tone\b|\busing only (?:the )?facts\b"
    r"|\bhere(?: is|'s|’s| are) (?:a|an|the|your) (?:\w+ )?(?:product )?(?:descriptions?|sentences)\b"
    # the model speaking as itself ("I'm excited to tell you"): shop copy has no "I"
    r"|(?<![\w'’-])I(?:'m|’m|'ve|’ve)?(?=[\s,.!])",
)]
_STUTTER = re.compile(r"([a-z]{1,3})\1{2,}", re.I)  # "thththofththeth"
_JUNK = re.compile(r"[\"“”'’,\]\[{}]{3,}")  # '",""' and the like: a model emitting list syntax
STOP_WORDS = frozenset("a an the and or of for to in on with is are it its this that by from at as be".split())


@dataclass(frozen=True)
class Problem:
    """One robotic pattern in a copy text; `fix` is the replacement when it can be repaired in place."""

    kind: str  # repeat | field_prose | name
    text: str
    start: int
    end: int
    reason: str
    fix: str | None = None
    action: str = "found"  # found | fixed | removed

    def to_json(self) -> dict:
        return asdict(self)


def _names(facts: CopyFacts) -> tuple[list[str], list[str]]:
    """(whole names whose spelling the catalog fixes: the brand; name words: the brand's words and the title's
    words that are not plain lower/Title case, such as GRUNDTAL or iPhone)."""
    whole = [facts.brand.strip()] if facts.brand and len(facts.brand.strip()) > 1 else []
    brand_words = [w for b in whole for w in _WORD.findall(b) if len(w) >= 3]
    odd = [w for w in _WORD.findall(facts.title or "") if len(w) >= 3 and w not in (w.lower(), w.capitalize())
           and not re.search(r"[-'’]", w)]
    return whole, list(dict.fromkeys(brand_words + odd))


def _flexible(name: str) -> re.Pattern:
    """`name` with any case and optional spaces or hyphens between its words (and between a joined word's parts)."""
    parts = [re.escape(p) for p in re.split(r"[\s-]+", name) if p]
    return re.compile(r"(?<![\w-])" + r"[\s-]*".join(parts) + r"(?![\w-])", re.I)


def _name_problems(text: str, facts: CopyFacts) -> list[Problem]:
    whole, name_words = _names(facts)
    found: list[Problem] = []
    covered: list[tuple[int, int]] = []
    for name in whole + name_words:
        for m in _flexible(name).finditer(text):
            if any(s <= m.start() < e for s, e in covered):
                continue
            covered.append((m.start(), m.end()))
            if m.group(0) != name:
                found.append(Problem("name", m.group(0), m.start(), m.end(),
                                     f"{m.group(0)!r} is spelled {name!r} in the catalog", fix=name))
    evidence = {w.lower() for w in _WORD.findall(facts.evidence_text())}
    brand_words = {w.lower() for b in whole for w in _WORD.findall(b)}
    for m in _WORD.finditer(text):
        word = m.group(0).rstrip("'’s") if m.group(0).endswith(("'s", "’s")) else m.group(0)
        low = word.lower()
        if len(word) < 4 or not word[0].isupper() or low in evidence or any(s <= m.start() < e for s, e in covered):
            continue
        for name in name_words:
            near = SequenceMatcher(None, low, name.lower()).ratio() >= (0.75 if len(name) >= 6 else 0.8)
            stem = low.startswith(name.lower()) or name.lower().startswith(low)
            if near and (name.lower() in brand_words or not stem):
                found.append(Problem("name", word, m.start(), m.start() + len(word),
                                     f"{word!r} looks like a misspelling of the catalog's {name!r}"))
                break
    flagged = {p.start for p in found}
    for m in _WORD.finditer(text):
        word = m.group(0)
        low = word.lower().removesuffix("'s").removesuffix("’s")
        if (len(word) < 3 or not word[0].isupper() or m.start() in flagged or _sentence_start(text, m.start())
                or low in evidence or low in _COMMON_CAPITALS or any(s <= m.start() < e for s, e in covered)):
            continue
        found.append(Problem("name", word, m.start(), m.end(),
                             f"{word!r} is a name the catalog does not have (invented)"))
    return found


# Capitalised mid-sentence words that are not product names.
_COMMON_CAPITALS = frozenset("i i'm i've i'll monday tuesday wednesday thursday friday saturday sunday january "
                             "february march april may june july august september october november december "
                             "christmas diwali eid easter".split())


def _sentence_start(text: str, start: int) -> bool:
    """Whether the word at `start` opens a sentence, a line or a quotation (where any word is capitalised)."""
    before = text[:start].rstrip(" \t\"'“‘(")
    return not before or before[-1] in ".!?:\n;-–—"


def _repeats(text: str, facts: CopyFacts) -> list[Problem]:
    found = [Problem("repeat", m.group(0), m.start(), m.end(), f"{m.group(1)!r} written twice", fix=m.group(1))
             for m in _DOUBLED.finditer(text)]
    name_words = {w.lower() for w in _WORD.findall(f"{facts.brand or ''} {facts.title or ''}")}
    tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(tokens) - 3):
        gram = tuple(t for t, _, _ in tokens[i:i + 4])
        if all(w in name_words or w in STOP_WORDS for w in gram):
            continue  # the product's own name, said again, is not a repeated phrase
        if gram in seen and i - seen[gram] >= 4:
            found.append(Problem("repeat", text[tokens[i][1]:tokens[i + 3][2]], tokens[i][1], tokens[i + 3][2],
                                 f"the phrase {' '.join(gram)!r} is written twice"))
        seen.setdefault(gram, i)
    for start, end in sentences(text):  # a loop of variations: "a luxury vest, a high-end luxury vest, a luxury ..."
        counts: dict[str, int] = {}
        for m in _WORD.finditer(text[start:end]):
            word = m.group(0).lower()
            if len(word) >= 4 and word not in name_words and word not in STOP_WORDS:
                counts[word] = counts.get(word, 0) + 1
        worn = [w for w, c in counts.items() if c >= 3]
        if worn:
            found.append(Problem("repeat", text[start:end].strip()[:60], start, end,
                                 f"{worn[0]!r} written {counts[worn[0]]} times in one sentence"))
    return found


def _garbled(text: str) -> list[Problem]:
    """Sentences that are not language: stuttered letters, runs of quotes and commas, or mostly non-words."""
    found = []
    for start, end in sentences(text):
        sentence = text[start:end]
        tokens = sentence.split()
        wordy = sum(bool(re.fullmatch(r"[\"“(]?[A-Za-zÀ-ÿ][\w'’/-]*[.,!?;:\")”]*", t)) or t[:1].isdigit() for t in tokens)
        fragment = 0 < len(tokens) <= 2  # a word list, one a line, or "In white." "Pro-B."
        bad = _STUTTER.search(sentence) or _JUNK.search(sentence) or (tokens and wordy < 0.7 * len(tokens)) or fragment
        if bad:
            found.append(Problem("garbled", sentence.strip()[:60], start, end, "not a sentence a shopper can read"))
    return found


def problems(text: str, facts: CopyFacts) -> list[Problem]:
    """Every repeated word or phrase, field-name prose, mis-spelled catalog name and garbled sentence in `text`."""
    found = _repeats(text, facts) + _name_problems(text, facts) + _garbled(text)
    for pattern in _FIELD_PROSE:
        found += [Problem("field_prose", m.group(0).strip(), m.start(), m.end(),
                          f"{m.group(0).strip()!r} reads out a catalog field") for m in pattern.finditer(text)]
    return sorted(found, key=lambda p: p.start)


def repair(text: str, facts: CopyFacts) -> tuple[str, list[Problem]]:
    """`text` with name variants respelled and doubled words collapsed, then without the sentences that still carry
    a problem; every problem met comes back marked fixed or removed."""
    report: list[Problem] = []
    for _ in range(3):  # a fix can reveal another ("and and and"); a few passes settle it
        fixable = [p for p in problems(text, facts) if p.fix is not None]
        if not fixable:
            break
        last_end = len(text) + 1
        for p in sorted(fixable, key=lambda p: p.start, reverse=True):
            if p.end <= last_end:
                text = text[:p.start] + p.fix + text[p.end:]
                last_end = p.start
                report.append(replace(p, action="fixed"))
    left = problems(text, facts)
    if left:
        text = without_sentences(text, [p.start for p in left])
        report += [replace(p, action="removed") for p in left]
    return text, report
