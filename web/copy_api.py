"""The merchandiser's copy workflow over HTTP: generate (optionally streamed), check, edit, approve, discard.

Every writing endpoint needs `Authorization: Bearer $SHOPLENS_API_KEY` (web/auth.py). Errors use the service's
one JSON error shape. The page at /copywriter drives these endpoints from the browser.
"""
from __future__ import annotations

import json
from typing import Iterator

from flask import Blueprint, Response, g, jsonify, render_template, request, stream_with_context
from sqlalchemy import or_, select

from indexer.errors import BadInput, ShopLensError
from indexer.store import CopyVersion, Product
from web.auth import require_api_key
from web.copywriter.facts import load_facts
from web.copywriter.prompt import CopyOptions
from web.copywriter.service import CopyService
from web.copywriter.grounding import Claim, FactIndex, extract_claims
from web.copywriter.versions import edit_version, known_brands, list_versions, set_status, version_json
from web.openapi import Param, SchemaRef, operation
from web.services import services

bp = Blueprint("copy", __name__)

PRODUCT_ID = Param("product_id", where="path", required=True, max_length=128, description="the catalog's product id")
VERSION = Param("version", "integer", where="path", required=True, minimum=1, description="copy version number")
CLAIM = {"type": "object", "properties": {"kind": {"type": "string"}, "text": {"type": "string"},
                                          "start": {"type": "integer"}, "end": {"type": "integer"},
                                          "supported": {"type": "boolean"}, "reason": {"type": "string"},
                                          "action": {"type": "string"}}}
COPY_VERSION = SchemaRef("CopyVersion", {
    "type": "object", "required": ["product_id", "version", "status", "text", "unsupported_claims", "model"],
    "properties": {"product_id": {"type": "string"}, "version": {"type": "integer"},
                   "status": {"type": "string", "enum": ["draft", "approved", "discarded"]},
                   "text": {"type": "string"}, "bullets": {"type": "array", "items": {"type": "string"}},
                   "seo_title": {"type": "string", "nullable": True}, "model": {"type": "string"},
                   "edited": {"type": "boolean"}, "author": {"type": "string", "nullable": True},
                   "unsupported_claims": {"type": "array", "items": CLAIM},
                   "flagged": {"type": "array", "items": CLAIM}}})
COPY_LIST = SchemaRef("CopyVersions", {
    "type": "object", "required": ["product_id", "versions"],
    "properties": {"product_id": {"type": "string"}, "title": {"type": "string"},
                   "source_description": {"type": "string", "nullable": True},
                   "facts": {"type": "object"}, "versions": {"type": "array", "items": COPY_VERSION}}})
GENERATE_DOC = ("JSON body (all optional): length short|medium|long, tone friendly|professional|luxury|playful|minimal, "
                "bullets, seo_title, retries 0-5, temperature, seed, author. With `Accept: text/event-stream` (or "
                "?stream=1) the answer is a server-sent event stream: `token` events with the text as it is "
                "written, then `done` with the stored version (or `error`).")


def _body() -> dict:
    if not request.get_data(cache=True):
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object", hint="Send Content-Type: application/json.")
    return data


def _author(body: dict) -> str:
    author = body.pop("author", None) or "merchandiser"
    if not isinstance(author, str) or len(author) > 256:
        raise BadInput("author must be a string of at most 256 characters")
    return author


@bp.get("/api/v1/products/<product_id>/copy")
@operation("The product's copy versions, newest first, with its source description",
           params=(PRODUCT_ID,), responses={200: ("Versions", COPY_LIST)}, errors=(404, 503), tags=("copy",))
def list_copy(product_id: str):
    service = services().copy
    versions = list_versions(service.store, product_id)
    with service.store.session() as s:
        facts = load_facts(s, product_id)
    return jsonify({"product_id": product_id, "title": facts.title, "source_description": facts.description,
                    "facts": dict(facts.prompt_facts()), "versions": [version_json(v) for v in versions]})


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(service: CopyService, product_id: str, options: CopyOptions, author: str) -> Iterator[str]:
    try:
        for item in service.stream(product_id, options, author=author):
            if isinstance(item, tuple):
                yield _sse("done", version_json(item[1]))
            else:
                yield _sse("token", {"text": item})
    except ShopLensError as exc:  # the status line is already sent: report in the stream
        yield _sse("error", {"error": {"code": exc.code, "message": str(exc)}})


@bp.post("/api/v1/products/<product_id>/copy")
@require_api_key
@operation("Generate grounded copy for the product (stored as a draft)", params=(PRODUCT_ID,),
           responses={201: ("The stored draft", COPY_VERSION)}, errors=(404, 503), tags=("copy",),
           description=GENERATE_DOC)
def generate_copy(product_id: str):
    body = _body()
    author = _author(body)
    options = CopyOptions.from_json(body)
    service = services().copy
    with service.store.session() as s:
        load_facts(s, product_id)  # a 404 now, before a stream starts
    wants_stream = request.args.get("stream") in ("1", "true") or \
        request.accept_mimetypes.best == "text/event-stream"
    if wants_stream:
        return Response(stream_with_context(_stream(service, product_id, options, author)),
                        mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    (_draft, version), = service.generate([product_id], options, author=author)
    return jsonify(version_json(version)), 201


@bp.post("/api/v1/products/<product_id>/copy/check")
@operation("Grounding check of a text against the product's facts (writes nothing)", params=(PRODUCT_ID,),
           responses={200: ("Claims found", {"type": "object"})}, errors=(404,), tags=("copy",),
           description="JSON body: {\"text\": ...}. Returns every checkable claim with its span and verdict.")
def check_copy(product_id: str):
    text = _text(_body())
    claims = _claims(product_id, text)
    return jsonify({"product_id": product_id, "claims": [c.to_json() for c in claims],
                    "unsupported_claims": [c.to_json() for c in claims if not c.supported]})


def _text(body: dict) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadInput("`text` must be a non-empty string")
    return text


def _claims(product_id: str, text: str) -> list[Claim]:
    """The grounding check of `text` (database facts and catalog brands; no model needed)."""
    with services().copy.store.session() as s:
        return extract_claims(text, FactIndex(load_facts(s, product_id), known_brands(s)))


@bp.post("/api/v1/products/<product_id>/copy/<int:version>/edit")
@require_api_key
@operation("Store an edited text as a new draft version (checked again)", params=(PRODUCT_ID, VERSION),
           responses={201: ("The new version", COPY_VERSION)}, errors=(404,), tags=("copy",),
           description="JSON body: {\"text\": ..., \"bullets\": [..]?, \"seo_title\": ..?, \"author\": ..?}")
def edit_copy(product_id: str, version: int):
    body = _body()
    author = _author(body)
    text = _text(body)
    bullets = body.get("bullets")
    if bullets is not None and not (isinstance(bullets, list) and all(isinstance(b, str) for b in bullets)):
        raise BadInput("`bullets` must be a list of strings")
    seo_title = body.get("seo_title")
    if seo_title is not None and not isinstance(seo_title, str):
        raise BadInput("`seo_title` must be a string")
    row = edit_version(services().copy.store, product_id, version, text=text, claims=_claims(product_id, text),
                       bullets=bullets, seo_title=seo_title, author=author)
    return jsonify(version_json(row)), 201


def _set_status(product_id: str, version: int, status: str):
    body = _body()
    author = _author(body)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadInput("`force` must be true or false")
    row = set_status(services().copy.store, product_id, version, status, author=author, force=force)
    return jsonify(version_json(row))


@bp.post("/api/v1/products/<product_id>/copy/<int:version>/approve")
@require_api_key
@operation("Approve a version: it feeds the lexical index from the next index build", params=(PRODUCT_ID, VERSION),
           responses={200: ("The approved version", COPY_VERSION)}, errors=(404, 409), tags=("copy",),
           description="JSON body (optional): {\"force\": true} approves text that still has unsupported claims.")
def approve_copy(product_id: str, version: int):
    return _set_status(product_id, version, "approved")


@bp.post("/api/v1/products/<product_id>/copy/<int:version>/discard")
@require_api_key
@operation("Discard a version", params=(PRODUCT_ID, VERSION), responses={200: ("The discarded version", COPY_VERSION)},
           errors=(404,), tags=("copy",))
def discard_copy(product_id: str, version: int):
    return _set_status(product_id, version, "discarded")


@bp.get("/api/v1/copy/products")
@operation("Find products to write copy for (title, brand or id), with their copy status",
           params=(Param("q", max_length=128, description="words in the title or brand, or an id"),
                   Param("status", enum=("any", "none", "draft", "approved"), default="any"),
                   Param("limit", "integer", minimum=1, maximum=100, default=20)),
           responses={200: ("Products", {"type": "object"})}, tags=("copy",))
def find_products():
    q, status, limit = (g.params.get("q") or "").strip(), g.params["status"], g.params["limit"]
    service = services().copy
    with service.store.session() as s:
        query = select(Product.id, Product.title, Product.brand).where(Product.status == "active")
        for word in q.split()[:8]:
            like = f"%{word}%"
            query = query.where(or_(Product.title.ilike(like), Product.brand.ilike(like), Product.id == word))
        statuses: dict[str, set[str]] = {}
        rows = list(s.execute(query.order_by(Product.key).limit(limit * 5 if status != "any" else limit)))
        ids = [r.id for r in rows]
        for pid, st in s.execute(select(CopyVersion.product_id, CopyVersion.status)
                                 .where(CopyVersion.product_id.in_(ids))):
            statuses.setdefault(pid, set()).add(st)
    out = []
    for r in rows:
        have = statuses.get(r.id, set())
        copy_status = "approved" if "approved" in have else "draft" if "draft" in have else "none"
        if status in ("any", copy_status):
            out.append({"id": r.id, "title": r.title, "brand": r.brand, "copy_status": copy_status})
    return jsonify({"products": out[:limit]})


@bp.get("/copywriter")
def copywriter_page():
    """The merchandiser's page: find a product, generate (streamed), see flagged claims, edit, approve."""
    return render_template("copywriter.html", product_id=request.args.get("product", ""))

