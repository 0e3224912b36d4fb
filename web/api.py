"""The JSON API under /api/v1 (interfaces.md), plus /healthz and the product images under /images/ID.

Every view declares its parameters with `@operation`, which validates them and feeds /api/v1/openapi.json.
"""
from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from indexer.errors import NotFound, ShopLensError
from indexer.images import ImageResolver, sniff_format
from indexer.config import SCENE_MODES, SEARCH_MODES
from search.filters import Filters
from search.query import Query, SearchResult
from web.openapi import Param, SchemaRef, build_spec, operation
from web.services import services
from web.uploads import decode_upload, read_upload

bp = Blueprint("api", __name__)

NULLABLE_STR = {"type": "string", "nullable": True}
NULLABLE_NUM = {"type": "number", "nullable": True}
FACET_VALUES = {"type": "array", "items": {"type": "object", "required": ["value", "count"],
                                           "properties": {"value": {"type": "string"},
                                                          "count": {"type": "integer"}}}}
BOX = {"id": {"type": "integer"}, "x": {"type": "integer"}, "y": {"type": "integer"},
       "w": {"type": "integer"}, "h": {"type": "integer"}}
RESULT = SchemaRef("Result", {
    "type": "object", "required": ["id", "title", "score", "image_url"],
    "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "score": {"type": "number"},
                   "image_url": NULLABLE_STR, "brand": NULLABLE_STR, "category": NULLABLE_STR,
                   "colour": NULLABLE_STR, "gender": NULLABLE_STR, "price": NULLABLE_NUM,
                   "currency": NULLABLE_STR, "url": {"type": "string"}, "similar_url": {"type": "string"},
                   "duplicates": {"type": "array", "items": {"type": "string"}},
                   "region": {"type": "object", "description": "scene photos: the region of the photo this "
                              "product matched best (pixels of the uploaded photo)", "properties": BOX}}})
SEARCH_RESPONSE = SchemaRef("SearchResponse", {
    "type": "object", "required": ["results", "facets", "total", "page", "k", "index_version"],
    "properties": {
        "query": {"type": "object"},
        "results": {"type": "array", "items": RESULT},
        "facets": {"type": "object", "properties": {
            "brand": FACET_VALUES, "category": FACET_VALUES, "gender": FACET_VALUES, "colour": FACET_VALUES,
            "price": {"type": "array", "items": {"type": "object", "properties": {
                "min": {"type": "number"}, "max": NULLABLE_NUM, "count": {"type": "integer"}}}}}},
        "total": {"type": "integer"}, "page": {"type": "integer"}, "pages": {"type": "integer"},
        "k": {"type": "integer"}, "index_version": {"type": "string"},
        "regions": {"type": "array", "description": "scene photos: the regions this page's results matched, "
                    "each with the ids of those results (empty for any other query)",
                    "items": {"type": "object", "properties": {
                        **BOX, "results": {"type": "array", "items": {"type": "string"}}}}},
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}}}})
PRODUCT = SchemaRef("Product", {
    "type": "object", "required": ["id", "title"],
    "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "description": NULLABLE_STR,
                   "brand": NULLABLE_STR, "category": NULLABLE_STR, "colour": NULLABLE_STR,
                   "gender": NULLABLE_STR, "price": NULLABLE_NUM, "currency": NULLABLE_STR,
                   "attributes": {"type": "object"}, "image_url": NULLABLE_STR,
                   "similar_url": {"type": "string"}, "copy": {"type": "object", "nullable": True},
                   "printed_text": {"type": "array", "items": {"type": "string"},
                                    "description": "lines of text read on the product image (OCR)"}}})
STATUS = SchemaRef("Status", {
    "type": "object", "required": ["products", "index"],
    "properties": {"products": {"type": "integer"},
                   "index": {"type": "object", "properties": {"version": {"type": "string"},
                                                             "vectors": {"type": "integer", "nullable": True},
                                                             "type": NULLABLE_STR}}}})
HEALTH = SchemaRef("Health", {
    "type": "object", "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "index_version": {"type": "string"}}})
SUGGESTIONS = SchemaRef("Suggestions", {
    "type": "object", "required": ["suggestions"],
    "properties": {"suggestions": {"type": "array", "items": {"type": "object", "properties": {
        "text": {"type": "string"}, "count": {"type": "integer"}}}}}})

PAGING = (Param("k", "integer", minimum=1, maximum=100, default=10, description="results per page"),
          Param("page", "integer", minimum=1, maximum=1000, default=1, description="page number, from 1"))


def filter_params(where: str = "query") -> tuple[Param, ...]:
    return (Param("brand", where=where, repeated=True, max_length=256, description="brand (several: any of them)"),
            Param("category", where=where, repeated=True, max_length=256,
                  description="category at any level, e.g. Topwear or 'Apparel > Topwear'"),
            Param("gender", where=where, repeated=True, max_length=256),
            Param("colour", where=where, repeated=True, max_length=256),
            Param("price_min", "number", where=where, minimum=0, maximum=1e12),
            Param("price_max", "number", where=where, minimum=0, maximum=1e12))


QUERY_TEXT = Param("q", max_length="max_query_chars", description="text query; 'without X' or -word avoids X")
NEGATIVE = Param("not", max_length="max_query_chars", description="text to steer away from, e.g. 'logo'")
SEARCH_PARAMS = (QUERY_TEXT, NEGATIVE, *PAGING, *filter_params(),
                 Param("mode", enum=SEARCH_MODES, description="how a text query is answered (default: hybrid)"),
                 Param("collapse", "boolean", description="fold near-duplicates (default true)"))
# In a multipart body each filter takes one value (several query-string values are for GET).
FORM_SEARCH_PARAMS = tuple(Param(p.name, p.type, where="form", minimum=p.minimum, maximum=p.maximum,
                                 max_length=p.max_length, enum=p.enum, description=p.description)
                           for p in (QUERY_TEXT, NEGATIVE, *PAGING, *filter_params()))
SCENE = Param("scene", where="form", enum=SCENE_MODES,
              description="a photo alone: auto (searched region by region when it shows a scene, such as a room "
                          "with many products), on (always), off (as one product photo); default auto")
IMAGE_WEIGHT = Param("image_weight", "number", where="form", minimum=0, maximum=1,
                     description="the photo's share against the text, 0..1 (default 0.6)")


def filters_from(params: dict) -> Filters:
    def values(field: str) -> list[str]:
        value = params.get(field)
        return value if isinstance(value, list) else [value] if value else []

    pairs = [(f, v) for f in ("brand", "category", "gender", "colour") for v in values(f)]
    pairs += [(f, str(params[f])) for f in ("price_min", "price_max") if params.get(f) is not None]
    return Filters.parse(pairs)


def result_json(result: SearchResult, query: dict) -> dict:
    """A search result as the API returns it: the engine's dict plus links for each result."""
    body = result.to_dict()
    body["query"] = {**query, **body["query"]}
    for item, hit in zip(body["results"], result.hits):
        item["image_url"] = url_for("api.product_image", product_id=hit.product.id) if hit.product.has_image else None
        item["url"] = url_for("api.get_product", product_id=hit.product.id)
        item["similar_url"] = url_for("api.similar_products", product_id=hit.product.id)
    return body


def respond(result: SearchResult, query: dict) -> Response:
    """Render a result as JSON, timing the render stage and exporting every stage to /metrics."""
    started = time.perf_counter()
    body = result_json(result, query)
    timings = {**result.timings, "render": time.perf_counter() - started}
    body["timings_ms"] = {k: round(v * 1000, 3) for k, v in timings.items()}
    response = jsonify(body)
    current_app.extensions["shoplens.metrics"].observe_stages(timings, result.kind)
    return response


@bp.get("/api/v1/search")
@operation("Search by text (hybrid lexical + vector), with filters, facets and pages; no q: browse", params=SEARCH_PARAMS,
           responses={200: ("Results and facets", SEARCH_RESPONSE)}, errors=(503,), tags=("search",))
def search_get():
    p = g.params
    filters = filters_from(p)
    query = Query(text=p["q"] or "", negative=p["not"] or "", k=p["k"], page=p["page"], filters=filters,
                  mode=p["mode"], collapse=p["collapse"])
    result = services().engine.search(query)
    return respond(result, {"q": query.text, "filters": filters.as_dict()})


@bp.post("/api/v1/search")
@operation("Search by photo, or photo + text ('like this, but in blue'); a scene photo (a room) returns the "
           "products in it, each with the region it matched",
           params=(*FORM_SEARCH_PARAMS, IMAGE_WEIGHT, SCENE), form=True,
           files=(("image", True, "the photo: JPEG, PNG, WebP or GIF"),),
           responses={200: ("Results and facets", SEARCH_RESPONSE)}, errors=(413, 415, 503), tags=("search",))
def search_post():
    settings = current_app.config["SHOPLENS"]
    p = g.params
    filters = filters_from(p)
    image = decode_upload(read_upload(request.files.get("image"), settings), settings)
    query = Query(text=p["q"] or "", negative=p["not"] or "", image=image, image_weight=p["image_weight"],
                  k=p["k"] or 10, page=p["page"] or 1, filters=filters, scene=p["scene"])
    result = services().engine.search(query)
    return respond(result, {"q": query.text, "filters": filters.as_dict(), "image": True})


PRODUCT_ID = Param("product_id", where="path", required=True, max_length=128, description="the catalog's product id")


@bp.get("/api/v1/products/<product_id>")
@operation("One product's facts", params=(PRODUCT_ID,), responses={200: ("The product", PRODUCT)},
           errors=(404, 503), tags=("products",))
def get_product(product_id: str):
    _check_product_id(product_id)
    product = services().engine.product(product_id)
    product["image_url"] = url_for("api.product_image", product_id=product_id) if product.pop("has_image") else None
    product["similar_url"] = url_for("api.similar_products", product_id=product_id)
    return jsonify(product)


@bp.get("/api/v1/products/<product_id>/similar")
@operation("Products that look like this one", params=(PRODUCT_ID, *PAGING, *filter_params()),
           responses={200: ("Similar products", SEARCH_RESPONSE)}, errors=(404, 503), tags=("products",))
def similar_products(product_id: str):
    _check_product_id(product_id)
    p = g.params
    filters = filters_from(p)
    result = services().engine.search(Query(like=product_id, k=p["k"], page=p["page"], filters=filters))
    return respond(result, {"like": product_id, "filters": filters.as_dict()})


@bp.get("/api/v1/suggest")
@operation("Search-box suggestions for a prefix", params=(Param("q", required=True, max_length=128),
                                                           Param("n", "integer", minimum=1, maximum=20, default=8)),
           responses={200: ("Suggestions", SUGGESTIONS)}, errors=(503,), tags=("search",))
def suggest():
    return jsonify({"suggestions": services().engine.suggest(g.params["q"], g.params["n"])})


@bp.get("/api/v1/status")
@operation("Product count and the published index version", responses={200: ("Status", STATUS)},
           errors=(503,), tags=("service",))
def status():
    return jsonify(services().engine.status())


@bp.get("/api/v1/openapi.json")
def openapi_spec():
    return jsonify(build_spec(current_app))


@bp.get("/healthz")
@operation("Readiness: 200 with the index version once an index is loaded, else 503",
           responses={200: ("Ready", HEALTH)}, errors=(503,), tags=("service",))
def healthz():
    engine = services().engine
    engine.encoder()  # 503 unless the index's model is loaded (or loadable) in this process
    return jsonify({"status": "ok", "index_version": engine.state().version.name})


@bp.get("/images/<product_id>")
@operation("A product's image, read from the catalog (never a path from the request)", params=(PRODUCT_ID,),
           responses={200: ("The image bytes", None)}, errors=(404, 503), tags=("products",),
           content_type="image/*")
def product_image(product_id: str):
    _check_product_id(product_id)
    settings = current_app.config["SHOPLENS"]
    ref = services().engine.image_ref(product_id)
    try:
        data, _ = ImageResolver([], max_bytes=settings.max_image_bytes).read(ref)
    except ShopLensError:
        raise NotFound(f"the image of product {product_id!r} is missing from the catalog files") from None
    fmt = sniff_format(data[:16]) or "octet-stream"
    mimetype = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}.get(
        fmt, "application/octet-stream")
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _check_product_id(product_id: str) -> None:
    if not product_id or len(product_id) > 128 or "\x00" in product_id:
        raise NotFound("no such product")
