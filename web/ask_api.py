"""Questions and captions over HTTP (interfaces.md): ask about a product, ask about an uploaded photo, caption a
photo. Routes only: the answers come from `SearchEngine.ask*` / `caption*` (search.ask)."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from web.api import PRODUCT_ID
from web.openapi import Param, SchemaRef, operation
from web.services import services
from web.uploads import decode_upload, read_upload

bp = Blueprint("ask_api", __name__)

ANSWER = SchemaRef("Answer", {
    "type": "object", "required": ["answer", "source", "confidence"],
    "properties": {"answer": {"type": "string"},
                   "source": {"type": "string", "enum": ["facts", "image", "printed_text", "none"]},
                   "confidence": {"type": "number"}, "topic": {"type": "string", "nullable": True},
                   "value": {"type": "string", "nullable": True},
                   "closest": {"type": "array", "description": "a photo's closest catalog products",
                               "items": {"type": "object"}}}})
CAPTION = SchemaRef("Caption", {
    "type": "object", "required": ["caption"],
    "properties": {"caption": {"type": "string"}, "printed": {"type": "array", "items": {"type": "string"}},
                   "reads": {"type": "object"}}})
QUESTION = Param("q", required=True, max_length="max_query_chars", description="the question, e.g. 'what colour is it?'")
IMAGE_ONLY = Param("image_only", "boolean", description="hide the catalog's facts: answer from the photo alone")
PHOTO = (("image", True, "the photo: JPEG, PNG, WebP or GIF"),)


@bp.get("/api/v1/products/<product_id>/ask")
@operation("Ask a question about a product: answered from its facts, its photo or its printed text",
           params=(PRODUCT_ID, QUESTION, IMAGE_ONLY), responses={200: ("The answer and its source", ANSWER)},
           errors=(404, 503), tags=("questions",))
def ask_product(product_id: str):
    return jsonify(services().engine.ask(product_id, g.params["q"], image_only=bool(g.params["image_only"])).to_dict())


@bp.post("/api/v1/ask")
@operation("Ask a question about a photo of anything: zero-shot reads, its words and the closest products",
           params=(Param(QUESTION.name, where="form", required=True, max_length=QUESTION.max_length,
                         description=QUESTION.description),), form=True, files=PHOTO,
           responses={200: ("The answer and its source", ANSWER)}, errors=(413, 415, 503), tags=("questions",))
def ask_photo():
    settings = current_app.config["SHOPLENS"]
    image = decode_upload(read_upload(request.files.get("image"), settings), settings)
    return jsonify(services().engine.ask_photo(image, g.params["q"]).to_dict())


@bp.post("/api/v1/caption")
@operation("One sentence describing a photo, built from its visual reads and printed text", form=True, files=PHOTO,
           responses={200: ("The caption", CAPTION)}, errors=(413, 415, 503), tags=("questions",))
def caption_photo():
    settings = current_app.config["SHOPLENS"]
    image = decode_upload(read_upload(request.files.get("image"), settings), settings)
    return jsonify(services().engine.caption_photo(image).to_dict())
