"""Evaluation files (interfaces.md): queries as JSON Lines, judgements as TREC qrels, results as a TREC run.

Readers check every line and fail with the file and line number, so a typo in a hand-edited file is one clear
error instead of a silently smaller evaluation. Writers replace files atomically.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from indexer.errors import BadInput
from indexer.files import atomic_write_text

Qrels = dict[str, dict[str, int]]
Ranking = list[tuple[str, float]]
RunDict = dict[str, Ranking]


@dataclass(frozen=True)
class Query:
    """One evaluation query. `source` names the catalog products it was built from (held-out checks)."""

    id: str
    text: str | None = None
    image: Path | None = None
    filters: dict[str, str] = field(default_factory=dict)
    kind: str | None = None  # how it was built: "title", "attribute", "photo"; free for hand-written files
    source: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """'text', 'image' or 'combined': latency and metrics are reported per type."""
        if self.text and self.image:
            return "combined"
        return "image" if self.image else "text"


def _open_lines(path: Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{what} file {path} does not exist.", hint="Check the path, or build it with `shoplens eval build-queries`.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what} file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc


def read_queries(path: Path) -> list[Query]:
    """Read a queries file; image paths are resolved relative to the file's folder."""
    path = Path(path)
    queries: list[Query] = []
    seen: set[str] = set()
    for n, line in enumerate(_open_lines(path, "queries"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: not valid JSON ({exc.msg}).", hint='Each line must be like {"id": "q1", "text": "red dress"}.') from exc
        if not isinstance(obj, dict):
            raise BadInput(f"{where}: expected a JSON object, got {type(obj).__name__}.")
        qid = obj.get("id")
        if not isinstance(qid, (str, int)) or str(qid).strip() == "" or any(c.isspace() for c in str(qid)):
            raise BadInput(f"{where}: every query needs an \"id\" without spaces (TREC files are space-separated).")
        qid = str(qid)
        if qid in seen:
            raise BadInput(f"{where}: duplicate query id {qid!r}.")
        seen.add(qid)
        text = obj.get("text")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise BadInput(f"{where}: \"text\" must be a non-empty string.")
        image = obj.get("image")
        image_path = None
        if image is not None:
            if not isinstance(image, str) or not image:
                raise BadInput(f"{where}: \"image\" must be a path string.")
            image_path = (path.parent / image).resolve()
            if not image_path.is_file():
                raise BadInput(f"{where}: image {image} not found (looked for {image_path}).", hint="Image paths are relative to the queries file.")
        if text is None and image is None:
            raise BadInput(f"{where}: query {qid!r} has neither \"text\" nor \"image\".")
        filters = obj.get("filters") or {}
        if not isinstance(filters, dict) or not all(isinstance(v, (str, int, float)) for v in filters.values()):
            raise BadInput(f"{where}: \"filters\" must be an object of field → value.")
        source = obj.get("source") or []
        if not isinstance(source, list):
            raise BadInput(f"{where}: \"source\" must be a list of product ids.")
        queries.append(Query(qid, text.strip() if text else None, image_path,
                             {str(k): str(v) for k, v in filters.items()}, obj.get("kind"), tuple(map(str, source))))
    if not queries:
        raise BadInput(f"queries file {path} has no queries.")
    return queries


def write_queries(path: Path, queries: Iterable[Query]) -> None:
    """Write queries as JSON Lines; image paths are stored relative to the file when they can be."""
    path = Path(path).resolve()
    lines = []
    for q in queries:
        obj: dict = {"id": q.id}
        if q.text:
            obj["text"] = q.text
        if q.image:
            image = Path(q.image).resolve()
            shared = os.path.commonpath([image, path.parent]) != os.path.sep
            obj["image"] = os.path.relpath(image, path.parent) if shared else str(image)
        if q.filters:
            obj["filters"] = q.filters
        if q.kind:
            obj["kind"] = q.kind
        if q.source:
            obj["source"] = list(q.source)
        lines.append(json.dumps(obj, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_qrels(path: Path) -> Qrels:
    """Read TREC qrels `QUERY_ID 0 PRODUCT_ID RELEVANCE`; later lines for the same pair win, as in trec_eval."""
    path = Path(path)
    qrels: Qrels = {}
    for n, line in enumerate(_open_lines(path, "qrels"), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 4:
            raise BadInput(f"{path}:{n}: expected `QUERY_ID 0 PRODUCT_ID RELEVANCE`, got {len(parts)} fields.")
        try:
            rel = int(parts[3])
        except ValueError as exc:
            raise BadInput(f"{path}:{n}: relevance {parts[3]!r} is not an integer (0, 1 or 2).") from exc
        if rel < 0:
            raise BadInput(f"{path}:{n}: relevance must be 0 or more, got {rel}.")
        qrels.setdefault(parts[0], {})[parts[2]] = rel
    if not qrels:
        raise BadInput(f"qrels file {path} has no judgements.")
    return qrels


def write_qrels(path: Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    lines = [f"{qid} 0 {pid} {rel}" for qid, docs in qrels.items() for pid, rel in docs.items()]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def write_run(path: Path, run: Mapping[str, Sequence[tuple[str, float]]], name: str) -> None:
    """Write a TREC run `QUERY_ID Q0 PRODUCT_ID RANK SCORE RUN_NAME` (ranks from 1)."""
    tag = "".join(c if not c.isspace() else "_" for c in name) or "shoplens"
    lines = [f"{qid} Q0 {pid} {rank} {score:.6f} {tag}"
             for qid, ranking in run.items() for rank, (pid, score) in enumerate(ranking, start=1)]
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))


def read_run(path: Path) -> RunDict:
    """Read a TREC run file back into rankings ordered by rank."""
    path = Path(path)
    rows: dict[str, list[tuple[int, str, float]]] = {}
    for n, line in enumerate(_open_lines(path, "run"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise BadInput(f"{path}:{n}: expected `QUERY_ID Q0 PRODUCT_ID RANK SCORE RUN_NAME`.")
        try:
            rows.setdefault(parts[0], []).append((int(parts[3]), parts[2], float(parts[4])))
        except ValueError as exc:
            raise BadInput(f"{path}:{n}: rank and score must be numbers.") from exc
    return {qid: [(pid, score) for _, pid, score in sorted(r)] for qid, r in rows.items()}
