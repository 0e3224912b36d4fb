"""Copy versions in the store: every generation and every edit is a new row; nothing is overwritten.

Statuses: draft → approved | discarded. A product has at most one approved version: approving one sends the
previous approved version back to draft. The product's source description is never written here; approved copy
reaches search through the lexical index, which reads approved versions when an index version is built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from indexer.errors import BadInput, NotFound
from indexer.store import CopyVersion, Product, Store, utcnow

if TYPE_CHECKING:  # generate.py pulls in transformers; the CLI imports this module at startup
    from web.copywriter.generate import CopyDraft
    from web.copywriter.grounding import Claim

STATUSES = ("draft", "approved", "discarded")
MAX_TEXT_CHARS = 5000


class Conflict(BadInput):
    """A state change that does not apply (approving a discarded version, approving unsupported claims)."""

    code = "conflict"
    http_status = 409


def version_json(v: CopyVersion) -> dict:
    """A version as the API and `--json` show it; `unsupported_claims` are those still in the text."""
    flagged = list(v.unsupported_claims or [])
    return {
        "product_id": v.product_id, "version": v.version, "status": v.status, "text": v.text,
        "bullets": list(v.bullets or []), "seo_title": v.seo_title, "model": v.model, "params": v.params,
        "prompt": v.prompt, "author": v.author, "edited": v.edited, "parent_version": v.parent_version,
        "created_at": v.created_at.isoformat() if v.created_at else None,
        "unsupported_claims": [c for c in flagged if c.get("action") == "kept"],
        "flagged": flagged,
    }


def _next_version(session: Session, product_id: str) -> int:
    return (session.scalar(select(func.max(CopyVersion.version)).where(CopyVersion.product_id == product_id))
            or 0) + 1


def _add(store: Store, product_id: str, **values) -> CopyVersion:
    """Insert with the next version number; a concurrent writer taking the same number makes us retry."""
    for _ in range(5):
        try:
            with store.session() as s:
                if s.get(Product, product_id) is None:
                    raise NotFound(f"product {product_id!r} not found")
                row = CopyVersion(product_id=product_id, version=_next_version(s, product_id), **values)
                s.add(row)
            return row
        except IntegrityError:
            continue
    raise Conflict(f"could not store a new copy version of {product_id!r}: too many concurrent writers")


def save_draft(store: Store, draft: CopyDraft, *, author: str | None = None) -> CopyVersion:
    """Store a generated draft (with its grounding report) as the product's next version."""
    return _add(store, draft.product_id, text=draft.text, bullets=draft.bullets, seo_title=draft.seo_title,
                model=draft.model, prompt=draft.prompt, params=draft.params, status="draft", edited=False,
                author=author, created_at=utcnow(),
                unsupported_claims=[c.to_json() for c in draft.flagged + draft.unsupported_claims])


def get_version(session: Session, product_id: str, version: int) -> CopyVersion:
    row = session.scalar(select(CopyVersion).where(CopyVersion.product_id == product_id,
                                                   CopyVersion.version == version))
    if row is None:
        raise NotFound(f"product {product_id!r} has no copy version {version}",
                       hint=f"List them with GET /api/v1/products/{product_id}/copy.")
    return row


def list_versions(store: Store, product_id: str) -> list[CopyVersion]:
    with store.session() as s:
        if s.get(Product, product_id) is None:
            raise NotFound(f"product {product_id!r} not found")
        return list(s.scalars(select(CopyVersion).where(CopyVersion.product_id == product_id)
                              .order_by(CopyVersion.version.desc())))


def edit_version(store: Store, product_id: str, version: int, *, text: str, claims: list[Claim],
                 bullets: list[str] | None = None, seo_title: str | None = None,
                 author: str | None = None) -> CopyVersion:
    """A merchandiser's edit of `version`, stored as a new draft version (edited=True) with its own check."""
    text = (text or "").strip()
    if not text:
        raise BadInput("edited text is empty", hint="Send the new description in `text`.")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"edited text is {len(text)} characters, over the {MAX_TEXT_CHARS} limit")
    with store.session() as s:
        parent = get_version(s, product_id, version)
        values = dict(bullets=list(parent.bullets or []) if bullets is None else bullets,
                      seo_title=parent.seo_title if seo_title is None else seo_title,
                      model=parent.model, prompt=parent.prompt, params=parent.params)
    return _add(store, product_id, text=text, status="draft", edited=True, author=author, parent_version=version,
                created_at=utcnow(), unsupported_claims=[c.to_json() for c in claims if not c.supported],
                **values)


def set_status(store: Store, product_id: str, version: int, status: str, *, author: str | None = None,
               force: bool = False) -> CopyVersion:
    """Approve or discard a version. Approving text with unsupported claims needs `force`."""
    if status not in ("approved", "discarded"):
        raise BadInput(f"unknown status {status!r}", hint="Use approved or discarded.")
    with store.session() as s:
        row = get_version(s, product_id, version)
        if status == "approved":
            if row.status == "discarded":
                raise Conflict(f"version {version} of {product_id!r} was discarded",
                               hint="Edit it to make a new draft, then approve that.")
            kept = [c for c in (row.unsupported_claims or []) if c.get("action") == "kept"]
            if kept and not force:
                raise Conflict(f"version {version} still has {len(kept)} unsupported claim(s): "
                               + ", ".join(repr(c["text"]) for c in kept[:5]),
                               hint="Edit them out, or approve with force=true.")
            for other in s.scalars(select(CopyVersion).where(CopyVersion.product_id == product_id,
                                                             CopyVersion.status == "approved",
                                                             CopyVersion.id != row.id)):
                other.status = "draft"
        row.status = status
        row.params = {**(row.params or {}), f"{status}_by": author, f"{status}_at": utcnow().isoformat()}
    return row


def approved_product_ids(session: Session, product_ids: list[str] | None = None) -> set[str]:
    query = select(CopyVersion.product_id).where(CopyVersion.status == "approved")
    if product_ids is not None:
        query = query.where(CopyVersion.product_id.in_(product_ids))
    return set(session.scalars(query))


def recent_texts(session: Session, limit: int = 1000) -> list[tuple[str, Product]]:
    """The newest `limit` copy texts of the catalog with their products: what its descriptions already say."""
    query = (select(CopyVersion.text, Product).join(Product, Product.id == CopyVersion.product_id)
             .order_by(CopyVersion.id.desc()).limit(limit))
    return [(text, product) for text, product in session.execute(query)]


def known_brands(session: Session) -> frozenset[str]:
    """Every brand in the catalog: a copy naming one that isn't the product's is an unsupported claim."""
    return frozenset(b for b in session.scalars(select(Product.brand).distinct()) if b)
