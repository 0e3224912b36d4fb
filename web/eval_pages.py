"""The /eval pages: stored evaluation runs, each with its tables by mode and query type, plots and measures.

Read-only views of the eval_runs table; the plots are the PNGs `shoplens eval` wrote beside the run's report.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, render_template, send_file

from search.evaluation import reports
from search.evaluation.metrics import METRICS
from web.services import services

bp = Blueprint("eval_pages", __name__)

PLOTS = ("recall_at_k.png", "latency.png")


@bp.get("/eval")
def runs():
    """Every stored run, newest first, with its headline numbers."""
    return render_template("eval_runs.html", runs=reports.list_runs(services().store), fmt=reports.fmt)


@bp.get("/eval/<int:run_id>")
def run(run_id: int):
    """One run: retrieval by mode (significance against the baseline), by query type, plots, other measures."""
    found = reports.load_run(services().store, run_id)
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
    found = reports.load_run(services().store, run_id)
    path = Path(found.report_path).parent / name if found.report_path else None
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png")
