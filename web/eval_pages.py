"""The /eval pages: stored evaluation runs, each with its tables by mode and query type, plots and measures.

Read-only views of the eval_runs table; the plots are the PNGs `shoplens eval` wrote beside the run's report.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_file

from indexer.store import Store, open_store
from search.evaluation import reports
from search.evaluation.metrics import METRICS

bp = Blueprint("eval_pages", __name__)

PLOTS = ("recall_at_k.png", "latency.png")


def _store() -> Store:
    ext = current_app.extensions
    if "shoplens.eval_store" not in ext:
        ext["shoplens.eval_store"] = open_store(current_app.config["SHOPLENS"].db_url)
    return ext["shoplens.eval_store"]


@bp.get("/eval")
def runs():
    """Every stored run, newest first, with its headline numbers."""
    return render_template("eval_runs.html", runs=reports.list_runs(_store()), fmt=reports.fmt)


@bp.get("/eval/<int:run_id>")
def run(run_id: int):
    """One run: retrieval by mode (significance against the baseline), by query type, plots, other measures."""
    found = reports.load_run(_store(), run_id)
    plots = [p for p in PLOTS if found.report_path and (Path(found.report_path).parent / p).is_file()]
    return render_template("eval_run.html", run=found, metrics=METRICS, rows=reports.mode_rows(found.metrics),
                           headline=reports.HEADLINE, fmt=reports.fmt, plots=plots,
                           measures=found.metrics.get("measures", {}),
                           generation=reports.flatten(found.metrics.get("measures", {}).get("generation") or {}))


@bp.get("/eval/<int:run_id>/<name>")
def plot(run_id: int, name: str):
    """A plot of a run; only the known file names, from the run's own report folder."""
    if name not in PLOTS:
        abort(404)
    found = reports.load_run(_store(), run_id)
    path = Path(found.report_path).parent / name if found.report_path else None
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png")
