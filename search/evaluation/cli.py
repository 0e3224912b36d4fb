"""`shoplens eval`: run an evaluation, build query sets, list and compare stored runs.

    shoplens eval --queries Q.jsonl --qrels R.txt [--mode all] [--json OUT.json] [--run-out RUN.txt] [--strict]
    shoplens eval --compare RUN_A RUN_B
    shoplens eval build-queries title|attribute|photo --catalog CSV --queries-out Q.jsonl --qrels-out R.txt
    shoplens eval runs
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from indexer.config import Settings, settings_of
from indexer.errors import BadInput
from indexer.model.adapted import home_model_spec
from search.evaluation import builders, heldout, measures, reports, vqa
from search.evaluation.metrics import METRICS, STAT_TESTS
from search.evaluation.runner import DEFAULT_MODE, MODES, Evaluation, evaluate
from indexer.files import atomic_write_text
from search.evaluation.trec import read_qrels, read_queries, write_qrels, write_queries, write_run

log = logging.getLogger(__name__)

MEASURES = ("flops", "zeroshot", "generation")


def parse_modes(values: tuple[str, ...]) -> list[str]:
    """`--mode image --mode text`, `--mode image,text` or `--mode all`; none given: what search uses."""
    modes: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",") if p.strip()):
            wanted = list(MODES) if part == "all" else [part]
            for mode in wanted:
                if mode not in (*MODES, DEFAULT_MODE):
                    raise BadInput(f"unknown --mode {part!r}.", hint=f"Use one or several of {', '.join(MODES)}, or all.")
                if mode not in modes:
                    modes.append(mode)
    return modes or [DEFAULT_MODE]


def parse_measures(value: str) -> list[str]:
    if value.strip().lower() in ("none", ""):
        return []
    chosen = [m.strip().lower() for m in value.split(",") if m.strip()]
    if chosen == ["all"]:
        return list(MEASURES)
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        raise BadInput(f"unknown --measures {', '.join(unknown)}.", hint=f"Use {', '.join(MEASURES)}, all or none.")
    return chosen


def run_paths(path: Path, modes: list[str], baseline: str) -> dict[str, Path]:
    """One TREC run file per mode: the baseline at PATH, the others beside it as STEM.MODE.SUFFIX."""
    return {m: path if m == baseline else path.with_name(f"{path.stem}.{m}{path.suffix or '.txt'}") for m in modes}


def check_heldout(store, model: str, queries, *, strict: bool) -> dict:
    """Warn (or, with --strict, refuse) when queries come from products the model was trained on."""
    record = heldout.training_record(heldout.model_folder(model))
    if record is None:
        msg = f"model {model} records no training products (no training list beside its model card)"
        if strict:
            raise BadInput(f"--strict: cannot check held-out queries: {msg}.",
                           hint="Use a model whose folder lists its training products, or drop --strict.")
        log.warning("held-out check skipped: %s", msg)
        return {"checked": False, "reason": msg}
    need_titles = [q for q in queries if not q.source and q.text]
    titles = heldout.product_titles(record.products, store) if need_titles else None
    leaked = heldout.queries_from_training(queries, record.products, titles)
    if leaked:
        msg = (f"{len(leaked)} of {len(queries)} queries come from products model {model} was trained on "
               f"(e.g. {', '.join(leaked[:3])}; training list {record.source})")
        if strict:
            raise BadInput(f"--strict: {msg}.", hint="Build queries with `shoplens eval build-queries` (it skips "
                                                     "training products), or drop --strict.")
        log.warning("held-out: %s; their scores overstate quality", msg)
    return {"checked": True, "training_list": str(record.source), "from_training": len(leaked)}


def other_measures(settings: Settings, store, model: str, chosen: list[str], zeroshot_n: int, level: int) -> dict:
    out: dict = {}
    if {"flops", "zeroshot"} & set(chosen):
        from indexer.model.encoder import load_encoder

        encoder = load_encoder(model, cache_dir=settings.model_cache_dir, runtime=settings.inference)
        if "flops" in chosen:
            out["flops"] = measures.flops_per_query(encoder)
        if "zeroshot" in chosen:
            out["zeroshot"] = measures.zero_shot_from_store(settings, store, encoder, n=zeroshot_n, level=level)
    if "generation" in chosen:
        out["generation"] = measures.generation_metrics(store)
    return out


@click.group("eval", invoke_without_command=True)
@click.option("--queries", type=click.Path(path_type=Path), help="Queries, JSON Lines (interfaces.md).")
@click.option("--qrels", type=click.Path(path_type=Path), help="Judgements, TREC qrels.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the summary as JSON here.")
@click.option("--run-out", type=click.Path(path_type=Path), help="Write the TREC run here (one file per mode).")
@click.option("--mode", "mode_values", multiple=True,
              help="image | text | fused | lexical | hybrid, several (repeat or comma-separate) or all; "
                   "default: what search uses.")
@click.option("--baseline", help="Mode the others are tested against (default: the first).")
@click.option("--test", "stat_test", type=click.Choice(STAT_TESTS), default="student", show_default=True,
              help="Paired significance test: Student's t or Fisher's randomisation.")
@click.option("--k", default=50, show_default=True, type=click.IntRange(1, 1000), help="Results per query.")
@click.option("--strict", is_flag=True, help="Refuse queries built from products the model was trained on.")
@click.option("--collapse", is_flag=True, help="Fold near-duplicates as shoppers see them (off: rank every product).")
@click.option("--measures", "measures_value", default="all", show_default=True,
              help="Other measures: flops, zeroshot, generation (comma-separated), all or none.")
@click.option("--zeroshot-n", default=300, show_default=True, type=click.IntRange(10, 100_000),
              help="Product images for zero-shot category accuracy.")
@click.option("--zeroshot-level", default=-1, show_default=True, type=int,
              help="Category path level for zero-shot (-1: the leaf).")
@click.option("--name", help="A name for this run.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md and plots (default HOME/eval/run-ID).")
@click.option("--compare", nargs=2, metavar="RUN_A RUN_B", help="Compare two stored runs (B against A).")
@click.option("--fail-on-regression", is_flag=True,
              help="With --compare: exit 1 if B is significantly worse than A on any metric.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Torch threads: queries run one at a time, as in one server worker.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def eval_command(ctx: click.Context, queries: Path | None, qrels: Path | None, json_out: Path | None,
                 run_out: Path | None, mode_values: tuple[str, ...], baseline: str | None, stat_test: str, k: int,
                 strict: bool, collapse: bool, measures_value: str, zeroshot_n: int, zeroshot_level: int,
                 name: str | None, report_dir: Path | None, compare: tuple[str, str] | None,
                 fail_on_regression: bool, threads: int, quiet: bool) -> None:
    """Offline retrieval evaluation: Recall@K, MRR, nDCG, MAP, latency; modes side by side; stored reports."""
    if ctx.invoked_subcommand is not None:
        return
    from indexer.store import open_store

    settings = settings_of(ctx)
    store = open_store(settings.db_url)
    if compare:
        _compare(store, compare, stat_test, fail_on_regression)
        return
    if queries is None or qrels is None:
        raise BadInput("give --queries and --qrels (or --compare RUN_A RUN_B).",
                       hint="Build them with `shoplens eval build-queries --help`.")
    modes = parse_modes(mode_values)
    baseline = (baseline or modes[0]).lower()
    chosen = parse_measures(measures_value)
    qs, judgements = read_queries(queries), read_qrels(qrels)
    import torch

    torch.set_num_threads(threads)  # more threads than free cores makes OpenMP spin: 50x slower queries here

    from search.evaluation.backend import EngineBackend

    backend = EngineBackend(settings, collapse=collapse)
    version, manifest = backend.index_version()
    model = manifest.get("model") or home_model_spec(settings)
    held = check_heldout(store, model, qs, strict=strict)
    result = evaluate(backend, qs, judgements, modes, k=k, baseline=baseline, test=stat_test, progress=not quiet)
    extra = other_measures(settings, store, model, chosen, zeroshot_n, zeroshot_level)
    config = {"queries": str(queries.resolve()), "qrels": str(qrels.resolve()), "modes": modes, "baseline": baseline,
              "test": stat_test, "k": k, "collapse": collapse, "threads": threads, "strict": strict, "model": model, "heldout": held, "search": backend.search_config(),
              "metrics": list(METRICS)}
    data = reports.payload(result, extra)
    run_id = reports.save_run(store, name=name, config=config, index_version=version, metrics=data)
    run = reports.load_run(store, run_id)
    report = reports.write_markdown(run, report_dir or settings.home / "eval" / f"run-{run_id}")
    reports.set_report_path(store, run_id, report)
    _write_outputs(result, data, run_id, json_out, run_out)
    click.echo(reports.mode_table(data))
    click.echo(f"eval run {run_id} on index {version}: report {report}")


def _write_outputs(result: Evaluation, data: dict, run_id: int, json_out: Path | None, run_out: Path | None) -> None:
    if json_out:
        summary = {k: v for k, v in data.items() if k not in ("per_query", "latency_per_query", "query_types")}
        atomic_write_text(json_out, json.dumps({"run_id": run_id, **summary}, indent=2) + "\n")
    if run_out:
        for mode, path in run_paths(run_out, list(result.results), result.baseline).items():
            write_run(path, result.results[mode].run, f"shoplens-{mode}")


def _compare(store, ids: tuple[str, str], stat_test: str, fail_on_regression: bool) -> None:
    a, b = reports.load_run(store, ids[0]), reports.load_run(store, ids[1])
    if a.config.get("queries") != b.config.get("queries"):
        log.warning("runs %s and %s used different query files; only shared query ids are paired", a.id, b.id)
    rows = reports.compare_runs(a, b, stat_test)
    table = [[r["mode"], r["metric"], reports.fmt(r["a"]), reports.fmt(r["b"]), f"{r['delta']:+.3f}",
              reports.fmt(r["p_value"], 4), r["common_queries"]] for r in rows]
    click.echo(f"run {a.id} (index {a.index_version}) → run {b.id} (index {b.index_version}), {stat_test} test")
    click.echo(reports.markdown_table(["mode", "metric", f"run {a.id}", f"run {b.id}", "delta", "p", "queries"], table))
    worse = [r for r in rows if r["delta"] < 0 and r["p_value"] is not None and r["p_value"] < 0.05]
    for r in worse:
        click.echo(f"regression: {r['mode']} {r['metric']} {r['a']:.3f} → {r['b']:.3f} (p={r['p_value']:.4f})", err=True)
    if worse and fail_on_regression:
        sys.exit(1)


@eval_command.command("runs")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def runs_command(ctx: click.Context, limit: int) -> None:
    """List stored evaluation runs, newest first."""
    from indexer.store import open_store

    rows = []
    for run in reports.list_runs(open_store(settings_of(ctx).db_url), limit):
        m = run.metrics.get("metrics", {})
        rows.append([run.id, run.name or "", f"{run.created_at:%Y-%m-%d %H:%M}", run.index_version,
                     ",".join(run.config.get("modes", [])), run.metrics.get("n_queries"),
                     reports.fmt(m.get("recall@10")), reports.fmt(m.get("mrr@10"))])
    click.echo(reports.markdown_table(["id", "name", "created", "index", "modes", "queries", "recall@10", "mrr@10"], rows))


@eval_command.command("build-queries")
@click.argument("kind", type=click.Choice(["title", "attribute", "photo"]))
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The catalog, read as `shoplens index` reads it.")
@click.option("--map", "map_items", multiple=True, metavar="FIELD=COLUMN", help="As for `shoplens index`.")
@click.option("--queries-out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--qrels-out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--n", default=500, show_default=True, type=click.IntRange(1), help="Queries to build (at most).")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", help="Title queries skip products this model was trained on (default: the configured model).")
@click.option("--include-training", is_flag=True, help="Title queries: do not skip training products.")
@click.option("--attributes", default=",".join(builders.MYNTRA_ATTRIBUTES), show_default=True,
              help="Attribute queries: fields or columns every relevant product must match.")
@click.option("--template", default=builders.MYNTRA_TEMPLATE, show_default=True,
              help="Attribute queries: how the attributes read as a query.")
@click.option("--min-relevant", default=3, show_default=True)
@click.option("--max-relevant", default=500, show_default=True)
@click.option("--photos", type=click.Path(dir_okay=False, path_type=Path),
              help="Photo queries: the labelled photo list (grocery photo_queries.csv format).")
@click.option("--partial", "partial_field", help="Photo queries: products sharing this field count as partly relevant.")
@click.pass_context
def build_queries_command(ctx: click.Context, kind: str, catalog: Path, map_items: tuple[str, ...], queries_out: Path,
                          qrels_out: Path, n: int, seed: int, model: str | None, include_training: bool,
                          attributes: str, template: str, min_relevant: int, max_relevant: int,
                          photos: Path | None, partial_field: str | None) -> None:
    """Build a reproducible query set (queries JSONL + TREC qrels) from a catalog."""
    settings = settings_of(ctx)
    rows = builders.read_catalog_rows(catalog, map_items)
    if kind == "title":
        exclude: frozenset[str] = frozenset()
        if not include_training:
            spec = model or home_model_spec(settings)
            record = heldout.training_record(heldout.model_folder(spec))
            if record is None:
                log.warning("model %s records no training products: title queries may include them", spec)
            else:
                exclude = record.products
        built = builders.title_queries(rows, n, seed, exclude)
    elif kind == "attribute":
        attrs = [a.strip() for a in attributes.split(",") if a.strip()]
        built = builders.attribute_queries(rows, n, seed, attrs, template, min_relevant, max_relevant)
    else:
        if photos is None:
            raise BadInput("photo queries need --photos PHOTO_LIST.csv.")
        built = builders.photo_queries(photos, rows, n if ctx.get_parameter_source("n").name != "DEFAULT" else None,
                                       seed, partial_field)
    write_queries(queries_out, built.queries)
    write_qrels(qrels_out, built.qrels)
    n_rel = sum(sum(1 for r in d.values() if r > 0) for d in built.qrels.values())
    click.echo(f"{len(built.queries)} {kind} queries → {queries_out}, {n_rel} judgements → {qrels_out}")


@eval_command.command("vqa")
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The catalog the questions are built from, read as `shoplens index` reads it.")
@click.option("--map", "map_items", multiple=True, metavar="FIELD=COLUMN", help="As for `shoplens index`.")
@click.option("--images-root", type=click.Path(file_okay=False, path_type=Path),
              help="Where relative image paths are (default: the catalog's folder).")
@click.option("--questions", default=",".join(vqa.DEFAULT_TOPICS), show_default=True,
              help=f"Question types, comma-separated: {', '.join(vqa.QUESTIONS)}.")
@click.option("--n", default=500, show_default=True, type=click.IntRange(1), help="Held-out products (at most).")
@click.option("--seed", default=0, show_default=True)
@click.option("--reference", default=2000, show_default=True, type=click.IntRange(0),
              help="More catalog products (training ones first) whose photos' facts vote in a visual read, as the "
                   "indexed catalog's do in search.")
@click.option("--model", help="The encoder (default: the home's model).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the figures here.")
@click.pass_context
def vqa_command(ctx: click.Context, catalog: Path, map_items: tuple[str, ...], images_root: Path | None,
                questions: str, n: int, seed: int, reference: int, model: str | None, json_out: Path | None) -> None:
    """Visual question answering accuracy per question type (image-only answers on held-out products), with
    the majority-class baseline."""
    from indexer.images import ImageResolver
    from indexer.model.encoder import load_encoder

    settings = settings_of(ctx)
    topics = [t.strip() for t in questions.split(",") if t.strip()]
    unknown = [t for t in topics if t not in vqa.QUESTIONS]
    if unknown:
        raise BadInput(f"unknown question type {unknown[0]!r}.", hint=f"Use {', '.join(vqa.QUESTIONS)}.")
    spec = model or home_model_spec(settings)
    record = heldout.training_record(heldout.model_folder(spec))
    if record is None:
        log.warning("model %s records no training products: every product counts as held out", spec)
    rows = builders.read_catalog_rows(catalog, map_items)
    roots = [p for p in (images_root, catalog.parent) if p is not None]
    resolver = ImageResolver(roots, max_bytes=settings.max_image_bytes)
    training = record.products if record else frozenset()
    items = vqa.pick_items(rows, training, n, seed, resolver, settings.max_image_pixels)
    if not items:
        raise BadInput(f"no held-out product of {catalog} has a readable image.")
    pool = vqa.pick_reference(rows, training, items, reference, seed, resolver, settings.max_image_pixels)
    encoder = load_encoder(spec, cache_dir=settings.model_cache_dir, runtime=settings.inference)
    printed = None
    if "brand" in topics:
        from indexer.reading import load_reader

        reader = load_reader()
        printed = lambda image: [(l.text, l.confidence) for l in reader.read_image(image, turn=True).lines]  # noqa: E731
    vectors = vqa.encode_images(encoder, [it.image for it in items])
    results = vqa.evaluate_vqa(rows, items, vectors, vqa.Pool.of(encoder, items, vectors, pool), encoder, topics,
                               printed)
    summary = {"catalog": str(catalog.resolve()), "model": encoder.name, "products": len(items), "seed": seed,
               "reference_products": len(pool),
               "heldout": {"checked": record is not None, "training_list": str(record.source) if record else None,
                           "excluded": sum(r["id"] in record.products for r in rows) if record else 0},
               "questions": results}
    if json_out:
        atomic_write_text(json_out, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    click.echo(vqa.vqa_table(results))
    click.echo(f"{len(items)} held-out products of {catalog.name}, model {encoder.name}")
