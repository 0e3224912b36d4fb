"""Quality numbers for generated copy (issue 5, item 6); `shoplens eval` and bench/generate.py report them.

- BLEU (corpus, 4-gram, smoothed) of each product's latest generated description against its source description:
  low is expected (the copy is written from facts, not paraphrased), it shows how close the wording is.
- Self-BLEU: each description against all the others; high means every product reads the same (low diversity).
- Grounding rate: share of descriptions whose final text has no unsupported claim (against the catalog's facts and the
  image reads recorded with the version; `no_claims_beyond_catalog` against the catalog alone), share also fluent,
  share whose first attempt was already clean, and the flagged claims by kind.
- CLIPScore (Hessel et al. 2021: 2.5 * max(cos, 0)) between the product image and the copy with our encoder,
  with the source descriptions' score beside it for scale.
- Perplexity of the language model on the source descriptions (how well it models catalog language).
- Merchandiser checks (`merchandiser_stats`, web/copywriter/polish.py): shares free of repeated words or phrases and
  of field-name prose, share with every catalog name spelled as the catalog does, share with no garbled sentence,
  and the median length in words.
- Human verdict: of the generated versions, the shares approved unedited, approved after an edit, discarded, pending.
"""
from __future__ import annotations

import logging
from dataclasses import replace
import math
import re
from collections import Counter, defaultdict
from typing import Iterable

import numpy as np
import torch
from sqlalchemy import select

from indexer.store import CopyVersion, Product, Store
from web.copywriter.facts import VisualAttribute, facts_from_product
from web.copywriter.generate import is_fluent
from web.copywriter.grounding import FactIndex, extract_claims
from web.copywriter.polish import problems

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+|[^\w\s]")


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def corpus_bleu(candidates: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU (0-100) with several references per candidate; zero n-gram matches smoothed to 0.1."""
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        c_tok = _tokens(cand)
        r_toks = [_tokens(r) for r in refs if r]
        if not r_toks:
            continue
        cand_len += len(c_tok)
        ref_len += min((abs(len(r) - len(c_tok)), len(r)) for r in r_toks)[1]
        for n in range(1, max_n + 1):
            c_grams = _ngrams(c_tok, n)
            best: Counter = Counter()
            for r in r_toks:
                best |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in c_grams.items())
            totals[n - 1] += max(len(c_tok) - n + 1, 0)
    if cand_len == 0:
        return 0.0
    log_p = sum(math.log((m if m else 0.1) / t) if t else math.log(1e-9) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
    return round(100 * brevity * math.exp(log_p), 2)


def self_bleu(texts: list[str]) -> float:
    """Mean over texts of BLEU against all the other texts (diversity: lower is more varied)."""
    if len(texts) < 2:
        return 0.0
    return round(float(np.mean([corpus_bleu([t], [texts[:i] + texts[i + 1:]]) for i, t in enumerate(texts)])), 2)


def grounding_stats(rows: list[tuple[Product, CopyVersion]], brands: Iterable[str]) -> dict:
    """Re-check every final text against its product's facts (not trusting the stored report): the catalog's facts
    plus the image reads recorded with the version (what the copywriter was given), and the catalog's alone."""
    brands = frozenset(brands)
    clean = fluent_clean = first_clean = fallback = catalog_only = 0
    by_kind: Counter = Counter()
    for product, version in rows:
        catalog = facts_from_product(product)
        seen = [VisualAttribute(**v) for v in (version.params or {}).get("visual_attributes") or []]
        index = FactIndex(replace(catalog, visual=seen), brands)
        if not any(not c.supported for c in extract_claims(version.text, index)):
            clean += 1
            fluent_clean += is_fluent(version.text)
        catalog_only += not any(not c.supported for c in extract_claims(version.text, FactIndex(catalog, brands)))
        flagged = version.unsupported_claims or []
        first_clean += (version.params or {}).get("attempts", 1) == 1 and not flagged
        fallback += bool((version.params or {}).get("fallback"))
        by_kind.update(c.get("kind") for c in flagged)
    n = len(rows) or 1
    return {"n": len(rows), "no_unsupported_claims": round(clean / n, 4),
            "no_claims_beyond_catalog": round(catalog_only / n, 4),
            "no_unsupported_and_fluent": round(fluent_clean / n, 4), "first_attempt_clean": round(first_clean / n, 4),
            "fallback_to_title": round(fallback / n, 4), "flagged_by_kind": dict(by_kind.most_common())}


def merchandiser_stats(rows: list[tuple[Product, CopyVersion]]) -> dict:
    """How many final texts a merchandiser could take as they are: no robotic repeats, no field names read out as
    prose, catalog names spelled the catalog's way, no garbled sentence; and their median length in words."""
    kinds = [{p.kind for p in problems(version.text, facts_from_product(product))} for product, version in rows]
    n = len(rows) or 1
    lengths = [len(version.text.split()) for _, version in rows]
    return {"no_repeats": round(sum("repeat" not in k for k in kinds) / n, 4),
            "no_field_prose": round(sum("field_prose" not in k for k in kinds) / n, 4),
            "no_repeats_or_field_prose": round(sum(not {"repeat", "field_prose"} & k for k in kinds) / n, 4),
            "names_as_in_catalog": round(sum("name" not in k for k in kinds) / n, 4),
            "no_garbled": round(sum("garbled" not in k for k in kinds) / n, 4),
            "median_words": float(np.median(lengths)) if lengths else 0.0}


def verdict_shares(versions: list[CopyVersion]) -> dict:
    """Shares of generated versions approved unedited, approved after an edit, discarded, or still pending."""
    by_product: dict[str, list[CopyVersion]] = defaultdict(list)
    for v in versions:
        by_product[v.product_id].append(v)
    counts: Counter = Counter()
    for group in by_product.values():
        children = defaultdict(list)
        for v in group:
            if v.parent_version is not None:
                children[v.parent_version].append(v)
        for v in group:
            if v.edited:
                continue
            if v.status == "approved":
                counts["approved_unedited"] += 1
            elif any(c.status == "approved" for c in children[v.version]):
                counts["approved_edited"] += 1
            elif v.status == "discarded":
                counts["discarded"] += 1
            else:
                counts["pending"] += 1
    total = sum(counts.values())
    return {"generated_versions": total, **{k: round(counts[k] / total, 4) if total else 0.0
                                             for k in ("approved_unedited", "approved_edited", "discarded", "pending")}}


def perplexity(llm, texts: list[str], batch_size: int = 8, max_tokens: int = 256) -> float:
    """exp(mean token negative log-likelihood) of the language model on `texts`."""
    tok, model = llm.tokenizer, llm.model
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        chunk = [t for t in texts[start:start + batch_size] if t and t.strip()]
        if not chunk:
            continue
        enc = tok(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)
        with llm.lock, torch.inference_mode():
            logits = model(**enc).logits[:, :-1]
        targets = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total_nll += float(nll[mask].sum())
        total_tokens += int(mask.sum())
    return round(math.exp(total_nll / total_tokens), 2) if total_tokens else float("nan")


def clip_scores(reader, rows: list[tuple[Product, CopyVersion]]) -> dict:
    """Mean CLIPScore image↔generated copy, and image↔source description for scale."""
    gen, src = [], []
    for product, version in rows:
        vector = reader.image_vector(product.image_ref) if product.image_ref else None
        if vector is None:
            continue
        texts = [version.text] + ([product.description] if product.description else [])
        text_vectors = reader.encoder.encode_texts(texts)
        gen.append(2.5 * max(float(text_vectors[0] @ vector), 0.0))
        if product.description:
            src.append(2.5 * max(float(text_vectors[1] @ vector), 0.0))
    return {"clipscore_generated": round(float(np.mean(gen)), 4) if gen else None,
            "clipscore_source": round(float(np.mean(src)), 4) if src else None, "n_images": len(gen)}


def latest_generated(store: Store, product_ids: list[str] | None = None) -> list[tuple[Product, CopyVersion]]:
    """Each product's newest generated (unedited) version with its product."""
    with store.session() as s:
        query = (select(Product, CopyVersion).join(CopyVersion, CopyVersion.product_id == Product.id)
                 .where(CopyVersion.edited.is_(False)).order_by(CopyVersion.product_id, CopyVersion.version))
        if product_ids is not None:
            query = query.where(Product.id.in_(product_ids))
        latest = {p.id: (p, v) for p, v in s.execute(query)}
    return list(latest.values())


def copy_quality(store: Store, *, llm=None, reader=None, product_ids: list[str] | None = None,
                 perplexity_sample: int = 100) -> dict:
    """Every copy quality number for the products with generated copy (models optional: skipped when None)."""
    from web.copywriter.versions import known_brands

    rows = latest_generated(store, product_ids)
    with store.session() as s:
        brands = known_brands(s)
        query = select(CopyVersion)
        if product_ids is not None:
            query = query.where(CopyVersion.product_id.in_(product_ids))
        versions = list(s.scalars(query))
    texts = [v.text for _, v in rows]
    sources = [p.description or "" for p, _ in rows]
    report = {
        "n_products": len(rows),
        "bleu_vs_source": corpus_bleu(texts, [[s] for s in sources]),
        "self_bleu": self_bleu(texts),
        "grounding": grounding_stats(rows, brands),
        "merchandiser": merchandiser_stats(rows),
        "verdicts": verdict_shares(versions),
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1) if texts else 0.0,
    }
    if llm is not None:
        report["perplexity_on_source"] = perplexity(llm, [s for s in sources if s][:perplexity_sample])
    if reader is not None:
        report.update(clip_scores(reader, rows))
    return report


def eval_metrics(store: Store) -> dict:
    """The provider `shoplens eval` calls: every number, with the default language model and encoder."""
    from indexer.model.encoder import load_encoder
    from indexer.errors import ShopLensError
    from web.copywriter.facts import VisualReader
    from web.copywriter.llm import load_llm

    if not latest_generated(store):
        return {"n_products": 0, "note": "no generated copy yet (shoplens generate ...)"}
    llm = reader = None
    try:
        llm = load_llm()
        reader = VisualReader(load_encoder())
    except ShopLensError as exc:  # numbers that need a model are left out, the rest still come
        log.warning("copy quality without %s: %s", "the encoder" if llm else "the language model", exc)
    return copy_quality(store, llm=llm, reader=reader)
