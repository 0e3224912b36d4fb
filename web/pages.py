"""The shopper's web app: server-rendered pages (search box, photo upload, results with facets, product page).

A photo search is POST /search (the upload) then a redirect to GET /search?img=<sha256>, so results pages are
plain links: facets, pages and "more like this" work for photo searches too.
"""
from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from indexer.errors import BadInput
from indexer.images import sniff_format
from search.filters import FILTER_FIELDS, Filters
from search.query import Query, SearchResult
from web.services import services
from web.uploads import UploadStore, decode_upload, read_upload

bp = Blueprint("pages", __name__)

PAGE_SIZE = 24
EXAMPLES = ("black running shoes", "red kurta for women", "denim jacket", "white sneakers without logo",
            "leather wallet", "Puma tshirt")


def _filters_from_args() -> Filters:
    return Filters.parse((f, v) for f in FILTER_FIELDS for v in request.args.getlist(f))


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must lie between {lo} and {hi}")
    return value


class SearchLinks:
    """Builds /search links that keep the current query and change one thing (a facet, the page)."""

    def __init__(self, base: dict[str, str], filters: Filters) -> None:
        self.base = {k: v for k, v in base.items() if v}
        self.filters = filters

    def _url(self, filters: Filters, page: int = 1) -> str:
        params = list(self.base.items()) + filters.pairs()
        if page > 1:
            params.append(("page", str(page)))
        return url_for("pages.search") + "?" + urlencode(params)

    def toggle(self, field: str, value: str) -> str:
        return self._url(self.filters.toggled(field, value))

    def price(self, lo: float | None, hi: float | None) -> str:
        current = (self.filters.price_min, self.filters.price_max)
        target = (None, None) if current == (lo, hi) else (lo, hi)
        return self._url(replace(self.filters, price_min=target[0], price_max=target[1]))

    def is_active(self, field: str, value: str) -> bool:
        return value.lower() in {v.lower() for v in getattr(self.filters, field)}

    def page(self, n: int) -> str:
        return self._url(self.filters, n)

    def clear(self) -> str:
        return self._url(Filters())


@bp.get("/")
def home():
    return render_template("index.html", examples=EXAMPLES, q="")


@bp.get("/search")
def search():
    q = (request.args.get("q") or "").strip()
    settings = current_app.config["SHOPLENS"]
    if len(q) > settings.max_query_chars:
        raise BadInput(f"the search is {len(q)} characters long; the limit is {settings.max_query_chars}",
                       hint="Use fewer words.")
    img = request.args.get("img") or ""
    like = request.args.get("like") or ""
    filters = _filters_from_args()
    page = _int_arg("page", 1, 1, 1000)
    if not (q or img or like or not filters.is_empty()):
        return redirect(url_for("pages.home"))
    engine = services().engine
    image = decode_upload(UploadStore(settings).load(img), settings) if img else None
    liked = engine.product(like) if like else None
    result = engine.search(Query(text=q, image=image, like=like or None, filters=filters, k=PAGE_SIZE, page=page))
    links = SearchLinks({"q": q, "img": img, "like": like}, filters)
    return _render_timed(result, "results.html", result=result, q=q, img=img, liked=liked, links=links,
                         filters=filters, captions=engine.captions([h.product for h in result.hits]))


@bp.post("/search")
def search_photo():
    settings = current_app.config["SHOPLENS"]
    data = read_upload(request.files.get("image"), settings)
    decode_upload(data, settings)  # refuse a bad photo now, with a clear page, not on the redirect
    digest = UploadStore(settings).save(data)
    q = (request.form.get("q") or "").strip()[: settings.max_query_chars]
    return redirect(url_for("pages.search", img=digest, **({"q": q} if q else {})), code=303)


@bp.get("/uploads/<digest>")
def uploaded_photo(digest: str):
    data = UploadStore(current_app.config["SHOPLENS"]).load(digest)
    fmt = (sniff_format(data[:16]) or "octet-stream").lower()
    response = Response(data, mimetype=f"image/{fmt}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/product/<product_id>")
def product(product_id: str):
    engine = services().engine
    facts = engine.product(product_id)
    similar = engine.search(Query(like=product_id, k=12))
    question = (request.args.get("ask") or "").strip()
    answer = engine.ask(product_id, question) if question else None
    cards = [engine.state().table.by_id[product_id], *(h.product for h in similar.hits)]
    return _render_timed(similar, "product.html", product=facts, similar=similar, q="", question=question,
                         answer=answer, captions=engine.captions(cards))


def _render_timed(timed: SearchResult, template: str, **context) -> str:
    """Render a page, exporting `timed`'s stage timings plus the render time to /metrics."""
    started = time.perf_counter()
    html = render_template(template, **context)
    timings = {**timed.timings, "render": time.perf_counter() - started}
    current_app.extensions["shoplens.metrics"].observe_stages(timings, timed.kind)
    return html
