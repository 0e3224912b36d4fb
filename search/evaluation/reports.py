"""Where evaluation results go: the eval_runs table, a Markdown report with plots, and run-to-run comparisons.

Every run is stored with its configuration, the index version it ran on, the summary metrics and the per-query
scores and latencies, so a later `--compare` can run a paired test between two runs without rerunning them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from sqlalchemy import select

from indexer.errors import BadInput, NotFound
from indexer.store import EvalRun, Store
from search.evaluation.metrics import METRICS, RECALL_CURVE_KS, paired_test
from search.evaluation.runner import Evaluation
from indexer.files import atomic_write_text

log = logging.getLogger(__name__)

HEADLINE = ("recall@1", "recall@10", "mrr@10", "ndcg@10")


def payload(evaluation: Evaluation, measures: dict | None = None) -> dict:
    """What is stored in eval_runs.metrics: the --json summary, extra measures, per-query scores and latencies."""
    out = evaluation.to_json()
    out["measures"] = measures or {}
    out["per_query"] = {mode: {m: {q: round(v, 6) for q, v in scores.items()} for m, scores in r.per_query.items()}
                        for mode, r in evaluation.results.items()}
    out["latency_per_query"] = {mode: {q: round(v, 3) for q, v in r.latency_ms.items()}
                                for mode, r in evaluation.results.items()}
    out["query_types"] = {q.id: q.type for q in evaluation.queries}
    return out


def save_run(store: Store, *, name: str | None, config: dict, index_version: str | None, metrics: dict) -> int:
    """Store one evaluation run; returns its id."""
    with store.session() as s:
        run = EvalRun(name=name, config=config, index_version=index_version, metrics=metrics)
        s.add(run)
        s.flush()
        return run.id


def set_report_path(store: Store, run_id: int, path: Path) -> None:
    with store.session() as s:
        s.get(EvalRun, run_id).report_path = str(path)


def load_run(store: Store, run_id: int | str) -> EvalRun:
    """One stored run by id, or NotFound naming the ids that exist."""
    try:
        key = int(run_id)
    except (TypeError, ValueError):
        raise BadInput(f"run id must be a number, got {run_id!r}.") from None
    with store.session() as s:
        run = s.get(EvalRun, key)
        if run is None:
            recent = s.scalars(select(EvalRun.id).order_by(EvalRun.id.desc()).limit(5)).all()
            raise NotFound(f"no evaluation run {key}.",
                           hint=f"Recent runs: {', '.join(map(str, recent))}." if recent else "No run is stored yet.")
        return run


def list_runs(store: Store, limit: int = 100) -> list[EvalRun]:
    with store.session() as s:
        return list(s.scalars(select(EvalRun).order_by(EvalRun.id.desc()).limit(limit)))


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mode_rows(data: dict, metrics: Sequence[str] = METRICS) -> list[dict]:
    """One row per mode: metric values, whether each differs from the baseline (p < 0.05), latency."""
    sig = data.get("significance", {})
    p_values = sig.get("p_values", {})
    rows = []
    for mode, summary in data["modes"].items():
        cells = [(summary["metrics"].get(m), (p_values.get(mode, {}).get(m) or 1.0) < 0.05) for m in metrics]
        rows.append({"mode": mode, "baseline": mode == sig.get("baseline"), "n_queries": summary["n_queries"],
                     "cells": cells, "latency": summary["latency_ms"], "unsupported": summary.get("unsupported", 0)})
    return rows


def mode_table(data: dict, metrics: Sequence[str] = METRICS) -> str:
    """Modes × metrics as Markdown; `*` marks a significant difference from the baseline."""
    rows = [[r["mode"] + (" (baseline)" if r["baseline"] else ""), r["n_queries"],
             *(fmt(v) + ("*" if sig else "") for v, sig in r["cells"]),
             fmt(r["latency"]["p50"], 1), fmt(r["latency"]["p95"], 1)] for r in mode_rows(data, metrics)]
    return markdown_table(["mode", "queries", *metrics, "p50 ms", "p95 ms"], rows)


def type_table(data: dict) -> str:
    rows = []
    for mode, summary in data["modes"].items():
        for qtype, part in summary.get("by_type", {}).items():
            if part.get("unsupported") == part["n_queries"]:
                rows.append([mode, qtype, part["n_queries"], *("n/a" for _ in HEADLINE), "n/a", "n/a"])
                continue
            rows.append([mode, qtype, part["n_queries"], *(fmt(part["metrics"].get(m)) for m in HEADLINE),
                         fmt(part["latency_ms"]["p50"], 1), fmt(part["latency_ms"]["p95"], 1)])
    return (markdown_table(["mode", "query type", "queries", *HEADLINE, "p50 ms", "p95 ms"], rows)
            + "\n\nn/a: the mode cannot answer this query type (lexical has no words in a photo); such queries"
              " score 0 in the table above.")


def plot_recall_curves(data: dict, out: Path) -> Path:
    """Recall@K against K, one line per mode (K from the per-query scores stored with the run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, summary in data["modes"].items():
        ks = [k for k in RECALL_CURVE_KS if f"recall@{k}" in summary["metrics"]]
        ax.plot(ks, [summary["metrics"][f"recall@{k}"] for k in ks], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_xticks(RECALL_CURVE_KS, [str(k) for k in RECALL_CURVE_KS])
    ax.minorticks_off()
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_latency(data: dict, out: Path) -> Path:
    """Histogram of per-query latency for each mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, lat in data.get("latency_per_query", {}).items():
        if lat:
            ax.hist(list(lat.values()), bins=30, alpha=0.5, label=mode)
    ax.set_xlabel("latency per query (ms)")
    ax.set_ylabel("queries")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def flatten(values: dict, prefix: str = "") -> dict:
    """{"grounding": {"rate": .9}} -> {"grounding.rate": .9}, for one measure per table row."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def measures_markdown(measures: dict) -> str:
    """The zero-shot, FLOPs and generation sections."""
    parts = []
    zs = measures.get("zeroshot")
    if zs:
        if zs.get("available"):
            parts.append(f"**Zero-shot category accuracy** (image → `{zs['prompt']}`, {zs['n_images']} images, "
                         f"{zs['n_classes']} categories): top-1 {fmt(zs['top1'])}, top-5 {fmt(zs['top5'])} "
                         f"(chance {fmt(zs['chance_top1'])}, majority class {fmt(zs['majority_top1'])}).")
        else:
            parts.append(f"**Zero-shot category accuracy**: not measured ({zs.get('reason')}).")
    fl = measures.get("flops")
    if fl:
        parts.append(f"**FLOPs per query** ({fl['model']}): image tower {fl['image_gflops']:.3f} GFLOPs, "
                     f"text tower {fl['text_gflops']:.3f} GFLOPs (query \"{fl['text']}\").")
    gen = measures.get("generation")
    if gen:
        if gen.get("available"):
            rows = [[k, fmt(v) if isinstance(v, float) else v] for k, v in flatten(gen).items() if k != "available"]
            parts.append("**Generation (copywriter)**\n\n" + markdown_table(["measure", "value"], rows))
        else:
            parts.append(f"**Generation (copywriter)**: not measured ({gen.get('reason')}).")
    return "\n\n".join(parts)


def write_markdown(run: EvalRun, out_dir: Path) -> Path:
    """report.md plus recall_at_k.png and latency.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = run.metrics
    plot_recall_curves(data, out_dir / "recall_at_k.png")
    plot_latency(data, out_dir / "latency.png")
    sig = data["significance"]
    cfg = run.config
    text = f"""# Evaluation run {run.id}{f" — {run.name}" if run.name else ""}

- index version: `{run.index_version}`, model `{cfg.get('model')}`
- queries: `{cfg.get('queries')}`, judgements: `{cfg.get('qrels')}`, depth k = {cfg.get('k')}
- search settings: `{json.dumps(cfg.get('search', {}), sort_keys=True)}`
- created: {run.created_at:%Y-%m-%d %H:%M UTC}

## Retrieval by mode

{mode_table(data)}

`*`: differs from the baseline `{sig['baseline']}` at p < 0.05 ({'paired Student t-test' if sig['test'] == 'student' else 'Fisher randomisation test'}, per query).

## By query type

{type_table(data)}

![Recall@K](recall_at_k.png)

![Latency](latency.png)

## Other measures

{measures_markdown(data.get('measures', {})) or 'None measured (`--measures none`).'}
"""
    path = out_dir / "report.md"
    atomic_write_text(path, text)
    return path


def compare_runs(a: EvalRun, b: EvalRun, test: str = "student") -> list[dict]:
    """Per mode and metric: A, B, B − A and the paired p-value over the queries both runs scored."""
    rows = []
    for mode in a.metrics.get("modes", {}):
        if mode not in b.metrics.get("modes", {}):
            continue
        for m in METRICS:
            va = a.metrics["modes"][mode]["metrics"].get(m)
            vb = b.metrics["modes"][mode]["metrics"].get(m)
            if va is None or vb is None:
                continue
            qa = a.metrics.get("per_query", {}).get(mode, {}).get(m, {})
            qb = b.metrics.get("per_query", {}).get(mode, {}).get(m, {})
            common = set(qa) & set(qb)
            rows.append({"mode": mode, "metric": m, "a": va, "b": vb, "delta": vb - va,
                         "p_value": paired_test(qa, qb, test) if common else None, "common_queries": len(common)})
    if not rows:
        raise BadInput(f"runs {a.id} and {b.id} share no mode to compare.")
    return rows
