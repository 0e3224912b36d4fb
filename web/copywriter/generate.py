"""Grounded generation: facts in, a checked description (plus SEO title and optional bullets) out.

The model phrases a plan (web/copywriter/plan.py: which facts, in which order) with the catalog's own
descriptions of similar products as style (web/copywriter/style.py), sampling from each product's own seed
(`RowSampling`), so a text does not depend on the batch it is written in. Grounding happens twice. Before: words the facts don't support (other colours, materials, genders, fabric
features, patterns) are banned at decoding time, per product, so the model can't start writing them. After:
the grounding check reads what was written anyway (multi-token words, numbers, sizes, brands, product types);
a description with unsupported claims is regenerated (sampled, with the offending words banned too), and what
is still unsupported in the best attempt is removed sentence by sentence (so are facts copied from a style
example). Then the merchandiser checks (web/copywriter/polish.py) respell catalog names and drop repeated or
field-name sentences; an attempt with problems or below the length floor is regenerated too. Sentences that use a
phrase the catalog's descriptions already overuse (web/copywriter/phrasebook.py) are dropped, unless the facts
can't write the rest back up to the floor. A text still under
the floor is written up with one plain sentence per planned fact it leaves out; when the facts run out first, the
draft says so (`params["too_few_facts"]`) instead of padding. Every flagged claim is reported.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Iterator

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextIteratorStreamer

from web.copywriter.facts import CopyFacts
from web.copywriter.grounding import (Claim, FactIndex, lexicon, extract_claims, remove_unsupported,
                                      sentences)
from web.copywriter.llm import LLM
from web.copywriter.phrasebook import PhraseBook
from web.copywriter.phrasing import fill, fills_up
from web.copywriter.plan import Point, plan
from web.copywriter.polish import Problem, repair
from web.copywriter.prompt import CopyOptions, bullets_messages, description_messages, render
from web.copywriter.style import StyleExample, StyleLibrary, leaked_claims

log = logging.getLogger(__name__)

BANNABLE_KINDS = ("colour", "material", "gender", "feature", "pattern", "sleeve", "provenance")
_OUTLINE_MARK = re.compile(r"(?:^|(?<=[.!?]\s)|(?<=\n))[A-Za-z]\.\d+\s+", re.M)  # an outline number: "A.2 Its ..."
_PREAMBLE = re.compile(r"^(?:(?:here(?: is|'s)|sure|certainly|of course)\b[^\n]*?[:!.]\s*|"
                       r"(?:product )?(?:description|title)\s*:\s*)", re.I)


@dataclass
class CopyDraft:
    """A checked copy for one product, with the report of what the check flagged and what was done."""

    product_id: str
    text: str
    model: str
    prompt: str
    params: dict
    seo_title: str | None = None
    bullets: list[str] = field(default_factory=list)
    flagged: list[Claim] = field(default_factory=list)  # unsupported claims met in any attempt, with action
    checked: list[Claim] = field(default_factory=list)  # claims in the final text (all supported unless kept)
    attempts: int = 1
    raw_text: str = ""

    @property
    def unsupported_claims(self) -> list[Claim]:
        """Unsupported claims still in the final text (empty unless the check was told to keep them)."""
        return [c for c in self.checked if not c.supported]


class NoRepeatInAnswer(LogitsProcessor):
    """No n-gram twice in the answer. (transformers' no_repeat_ngram_size also counts the prompt, which would
    stop the model from repeating the product's own name from the fact list.)"""

    def __init__(self, prompt_length: int, n: int = 3) -> None:
        self.prompt_length = prompt_length
        self.n = n

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        answer = input_ids[:, self.prompt_length:].tolist()
        for row, tokens in enumerate(answer):
            if len(tokens) < self.n:
                continue
            prefix = tuple(tokens[-(self.n - 1):])
            banned = [tokens[i + self.n - 1] for i in range(len(tokens) - self.n + 1)
                      if tuple(tokens[i:i + self.n - 1]) == prefix]
            if banned:
                scores[row, banned] = float("-inf")
        return scores


class BanTokens(LogitsProcessor):
    """Per-row banned token ids: row i never samples a token in `mask[i]`."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.masked_fill(self.mask[:, :scores.shape[-1]], float("-inf"))


@lru_cache(maxsize=4)
def _lexicon_tokens(llm: LLM) -> dict[tuple[str, str], list[int]]:
    """(kind, key) → ids of vocabulary tokens that are, by themselves, a whole lexicon word (" Blue", "women")."""
    kinds = {}
    for kind, pattern, key, _ in lexicon():
        if kind in BANNABLE_KINDS:
            kinds.setdefault(kind, []).append((pattern, key))
    combined = {kind: re.compile("|".join(f"(?:{p.pattern})" for p, _ in entries), re.I)
                for kind, entries in kinds.items()}
    found: dict[tuple[str, str], list[int]] = {}
    vocab = llm.tokenizer.get_vocab()
    for token_id in vocab.values():
        word = llm.tokenizer.decode([token_id])
        stripped = word.strip()
        if len(stripped) < 2 or not stripped.replace("-", "").isalpha():
            continue
        for kind, regex in combined.items():
            if regex.fullmatch(stripped):
                for pattern, key in kinds[kind]:
                    if pattern.fullmatch(stripped):
                        found.setdefault((kind, key), []).append(token_id)
                        break
    return found


def banned_tokens(llm: LLM, index: FactIndex) -> set[int]:
    """Token ids of lexicon words the facts don't support (colours, materials, genders, ...)."""
    return {tid for (kind, key), ids in _lexicon_tokens(llm).items() if not index.supports(kind, key) for tid in ids}


def _claim_tokens(llm: LLM, claims: list[Claim]) -> set[int]:
    """First meaningful token of each flagged claim, so a retry can't write it the same way again."""
    ids: set[int] = set()
    for claim in claims:
        for variant in (" " + claim.text, claim.text, " " + claim.text.capitalize(), " " + claim.text.lower()):
            for tid in llm.tokenizer.encode(variant, add_special_tokens=False):
                if len(llm.tokenizer.decode([tid]).strip()) >= 3 or claim.kind == "number":
                    ids.add(tid)
                    break
    return ids


class RowSampling(LogitsProcessor):
    """Temperature and nucleus (top-p) sampling with one random stream per row, so a product's text depends on its
    own seed, never on the batch it was written in. Gumbel-max: the argmax of logits/T plus Gumbel noise is a draw
    from softmax(logits/T), so greedy decoding over these scores samples."""

    def __init__(self, temperature: float, seeds: list[int], top_p: float = 0.9) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        out = torch.full_like(scores, float("-inf"))
        for row, generator in enumerate(self.generators):
            logits, ids = self._nucleus(scores[row])
            uniform = torch.rand(scores.shape[-1], generator=generator)[ids].clamp(1e-10, 1 - 1e-7)  # a draw per
            out[row, ids] = logits - torch.log(-torch.log(uniform))  # token and step: the stream never depends on k
        return out

    def _nucleus(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fewest most likely tokens whose probability reaches top_p (with the one that crosses it). Looked for
        in the top 256 first: sorting the whole vocabulary every step cost as much as the model's step."""
        total = torch.logsumexp(logits, dim=-1)
        top, ids = logits.topk(min(256, len(logits)))
        mass = (top - total).exp().cumsum(dim=-1)
        if mass[-1] < self.top_p:  # a flat distribution: the nucleus reaches past the top 256
            top, ids = logits.sort(descending=True)
            mass = (top - total).exp().cumsum(dim=-1)
        keep = min(int((mass < self.top_p).sum()) + 1, len(top))
        return top[:keep], ids[:keep]


def row_seed(seed: int, key: str) -> int:
    """The random stream of one product's attempt: from the run's seed and the product (and attempt)."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:15], 16)


def complete(llm: LLM, prompts: list[str], bans: list[set[int]], max_new_tokens: int, *, temperature: float = 0.0,
             seeds: list[int] | None = None, streamer: TextIteratorStreamer | None = None,
             min_new_tokens: int = 0) -> list[str]:
    """One batched generation; rows are left-padded and decoded without the prompt. With a temperature, row i
    samples from its own stream `seeds[i]` (default: its position). `min_new_tokens` holds EOS back (benchmarks
    time a fixed length)."""
    tok = llm.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    vocab = max(len(tok), llm.model.config.vocab_size)
    mask = torch.zeros((len(prompts), vocab), dtype=torch.bool)
    for row, ids in enumerate(bans):
        if ids:
            mask[row, list(ids)] = True
    processors = LogitsProcessorList([BanTokens(mask), NoRepeatInAnswer(enc["input_ids"].shape[1])])
    if temperature > 0:
        processors.append(RowSampling(temperature, list(range(len(prompts))) if seeds is None else seeds))
    with llm.lock, torch.inference_mode():
        out = llm.model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                                 logits_processor=processors,
                                 eos_token_id=llm.eos_token_ids, pad_token_id=tok.pad_token_id, streamer=streamer,
                                 do_sample=False)
    return [tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True) for row in out]


def tidy(text: str) -> str:
    """Model output as shop copy: no markdown or label prefix, and no sentence cut off by the token limit."""
    text = _PREAMBLE.sub("", text.replace("**", "").replace("##", "").strip()).strip().strip('"').strip()
    text = _OUTLINE_MARK.sub("", text)
    if text and text[-1] not in ".!?\"')":
        spans = sentences(text)
        complete = [s for s in spans if text[s[0]:s[1]].rstrip()[-1:] in (".", "!", "?")]
        if complete:
            text = text[:complete[-1][1]]
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def is_fluent(text: str) -> bool:
    """Prose, not a fact list or a loop: enough words, mostly full sentences, few `key: value` lines, varied."""
    words = text.split()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(words) < 12 or not lines:
        return False
    label_lines = sum(bool(re.match(r"^[\w\s]{1,30}:", line)) or line.startswith(("-", "*", "•")) for line in lines)
    full = [s for s in sentences(text) if len(text[s[0]:s[1]].split()) >= 6]
    top_share = max(words.count(w) for w in set(words)) / len(words)
    return label_lines <= len(lines) * 0.2 and bool(full) and top_share < 0.2 and len(set(words)) > len(words) * 0.5


@dataclass
class _Attempt:
    raw: str
    cleaned: str
    claims: list[Claim]
    problems: list[Problem]
    floor: int  # words under which the attempt is a stub (regenerated)

    @property
    def fluent(self) -> bool:
        return is_fluent(self.cleaned)

    @property
    def ok(self) -> bool:
        return (self.fluent and all(c.supported for c in self.claims) and not self.problems
                and len(self.cleaned.split()) >= self.floor)

    @property
    def score(self) -> tuple[bool, int, int]:
        words = min(len(self.cleaned.split()), 2 * self.floor)  # long enough is enough; then fewer flags
        return self.fluent, words, -sum(not c.supported for c in self.claims) - len(self.problems)


@dataclass
class Job:
    """One product's writing: its facts, check index, plan, style examples and prompt."""

    facts: CopyFacts
    index: FactIndex
    points: list[Point]
    examples: list[StyleExample]
    prompt: str


def _attempt(raw: str, job: Job, options: CopyOptions, library: StyleLibrary | None) -> _Attempt:
    text = tidy(raw)
    claims = extract_claims(text, job.index)
    if library is not None:
        claims = sorted(claims + leaked_claims(text, job.index, job.examples, library), key=lambda c: c.start)
    cleaned, _ = remove_unsupported(text, claims)
    cleaned, found = repair(cleaned, job.facts)
    return _Attempt(text, cleaned, claims, found, options.retry_words)


def seo_title(facts: CopyFacts, limit: int = 60) -> str:
    """A short page title from the facts. Built, not generated: in trials the 135M model's titles were
    nonsense ("Premade Luxe: UniteShoppens"), and a title has no room for a sentence to be removed."""
    title = facts.title if not facts.brand or facts.brand.lower() in facts.title.lower() \
        else f"{facts.brand} {facts.title}"
    if len(title) > limit:
        title = title[:limit].rsplit(" ", 1)[0]
    return title


class Copywriter:
    """Writes grounded copy with one language model; `known_brands` lets the check catch other brands, `style`
    gives the catalog's descriptions of similar products as examples."""

    def __init__(self, llm: LLM, known_brands: frozenset[str] = frozenset(),
                 style: StyleLibrary | None = None, phrases: PhraseBook | None = None) -> None:
        self.llm = llm
        self.known_brands = known_brands
        self.style = style
        self.phrases = phrases  # the catalog's stock phrases: a sentence that overuses one is dropped

    def index(self, facts: CopyFacts) -> FactIndex:
        return FactIndex(facts, self.known_brands)

    def _prompt(self, messages: list[dict]) -> str:
        return render(self.llm.tokenizer, messages)

    def job(self, facts: CopyFacts, options: CopyOptions) -> Job:
        """What writing `facts` takes: the check index, the plan, the style examples and the prompt."""
        points = plan(facts)
        examples = self.style.examples(facts, options.style_examples) \
            if self.style is not None and options.style_examples else []
        return Job(facts, self.index(facts), points, examples,
                    self._prompt(description_messages(facts, options, points, examples)))

    def write(self, facts_list: list[CopyFacts], options: CopyOptions) -> list[CopyDraft]:
        """Checked copy for a batch of products (one batched generation per step)."""
        jobs = [self.job(f, options) for f in facts_list]
        bans = [banned_tokens(self.llm, job.index) for job in jobs]
        raws = complete(self.llm, [job.prompt for job in jobs], bans, options.max_new_tokens,
                        temperature=options.temperature, seeds=[row_seed(options.seed, j.facts.id) for j in jobs])
        attempts = [[_attempt(raw, job, options, self.style)] for raw, job in zip(raws, jobs)]
        self._retry(attempts, jobs, bans, options)
        drafts = [self._finish(job, tries, options) for job, tries in zip(jobs, attempts)]
        if options.seo_title:
            for draft, facts in zip(drafts, facts_list):
                draft.seo_title = seo_title(facts)
        if options.bullets:
            self._bullets(drafts, facts_list, [job.index for job in jobs], bans, options)
        return drafts

    def _retry(self, attempts: list[list[_Attempt]], jobs: list[Job], bans: list[set[int]],
               options: CopyOptions) -> None:
        for round_ in range(options.retries):
            todo = [i for i, tries in enumerate(attempts) if not tries[-1].ok]
            if not todo:
                return
            for i in todo:
                bans[i] = bans[i] | _claim_tokens(self.llm, [c for c in attempts[i][-1].claims if not c.supported])
            raws = complete(self.llm, [jobs[i].prompt for i in todo], [bans[i] for i in todo],
                            options.max_new_tokens, temperature=max(options.temperature, 0.7),
                            seeds=[row_seed(options.seed, f"{jobs[i].facts.id}:{round_ + 1}") for i in todo])
            for i, raw in zip(todo, raws):
                attempts[i].append(_attempt(raw, jobs[i], options, self.style))

    def _finish(self, job: Job, tries: list[_Attempt], options: CopyOptions) -> CopyDraft:
        best = max(range(len(tries)), key=lambda k: tries[k].score)
        flagged = []
        for k, attempt in enumerate(tries):
            action = "removed" if k == best else "regenerated"
            flagged += [Claim(**{**c.to_json(), "action": action}) for c in attempt.claims if not c.supported]
        text, stock, wear = tries[best].cleaned, [], None
        if self.phrases is not None:
            wear = partial(self.phrases.wear, facts=job.facts)
            text, stock = self.phrases.drop_stock(text, job.facts, partial(
                fills_up, facts=job.facts, points=job.points, min_words=options.min_words, wear=wear))
        text, added = fill(text, job.facts, job.points, options.min_words, wear)
        if added:
            text, _ = repair(text, job.facts)  # the written-up sentences meet the same checks
        if self.phrases is not None:
            self.phrases.add(text, job.facts)
        words = len(text.split())
        params = {**options.__dict__, "max_new_tokens": options.max_new_tokens, "attempts": len(tries),
                  "chosen_attempt": best + 1, "fallback": not tries[best].cleaned, "fluent": is_fluent(text),
                  "plan": [p.phrase for p in job.points], "style_examples": [e.product_id for e in job.examples],
                  "polish": [p.to_json() for p in tries[best].problems + stock],
                  "written_from_facts": [p.phrase for p in added], "too_few_facts": words < options.min_words}
        if params["too_few_facts"]:
            params["note"] = (f"only {words} words: the catalog gives too few facts for a {options.length} "
                              f"description (floor {options.min_words} words); add facts to write more")
            log.info("product %s: %s", job.facts.id, params["note"])
        return CopyDraft(product_id=job.facts.id, text=text, model=self.llm.name, prompt=job.prompt, params=params,
                         flagged=flagged, checked=extract_claims(text, job.index), attempts=len(tries),
                         raw_text=tries[best].raw)

    def _bullets(self, drafts: list[CopyDraft], facts_list: list[CopyFacts], indexes: list[FactIndex],
                 bans: list[set[int]], options: CopyOptions) -> None:
        prompts = [self._prompt(bullets_messages(f, options)) for f in facts_list]
        raws = complete(self.llm, prompts, bans, 70)
        for draft, ix, raw in zip(drafts, indexes, raws):
            for line in raw.splitlines():
                line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
                if len(line.split()) < 2:
                    continue
                bad = [c for c in extract_claims(line, ix) if not c.supported]
                if bad:
                    draft.flagged += [Claim(**{**c.to_json(), "action": "removed"}) for c in bad]
                else:
                    draft.bullets.append(line)
            draft.bullets = draft.bullets[:5]

    def stream(self, facts: CopyFacts, options: CopyOptions) -> Iterator[str | CopyDraft]:
        """The first attempt's text piece by piece as the model writes it, then the checked `CopyDraft`."""
        job = self.job(facts, options)
        bans = [banned_tokens(self.llm, job.index)]
        streamer = TextIteratorStreamer(self.llm.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=300)
        result: dict[str, object] = {}

        def work() -> None:
            try:
                result["raw"] = complete(self.llm, [job.prompt], bans, options.max_new_tokens,
                                         temperature=options.temperature, streamer=streamer,
                                         seeds=[row_seed(options.seed, facts.id)])[0]
            except BaseException as exc:  # surfaced to the caller below, after the stream ends
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        attempts = [[_attempt(str(result["raw"]), job, options, self.style)]]
        self._retry(attempts, [job], bans, options)
        draft = self._finish(job, attempts[0], options)
        if options.seo_title:
            draft.seo_title = seo_title(facts)
        if options.bullets:
            self._bullets([draft], [facts], [job.index], bans, options)
        yield draft
