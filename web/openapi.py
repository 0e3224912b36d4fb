"""OpenAPI 3 from the code: each view declares its parameters and responses once, with `@operation(...)`.

The same declaration validates the request (a bad `k` is a 400 naming the parameter, before the view runs) and
becomes the view's entry in `/api/v1/openapi.json`, which is assembled from the app's URL map. So the spec cannot
drift from the routes, and schemathesis can fuzz the API from it.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g, request

from indexer.errors import BadInput


class SchemaRef(dict):
    """A named response schema, written where it is used as `{"$ref": "#/components/schemas/NAME"}`.

    The reference carries its schema, so the spec lists in components/schemas exactly the schemas its views use,
    and declaring one changes nothing outside the module that declares it.
    """

    def __init__(self, name: str, schema: dict) -> None:
        super().__init__({"$ref": f"#/components/schemas/{name}"})
        self.name = name
        self.schema = schema


ERROR = SchemaRef("Error", {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
})
ERROR_TEXT = {400: "Bad input (the message names the parameter)", 401: "Missing or wrong API key",
              403: "Writing endpoints are off (no API key configured)", 404: "Not found",
              405: "Method not allowed", 413: "Request body or image too large",
              415: "Image format outside JPEG, PNG, WebP, GIF", 429: "Rate limited (see Retry-After)",
              503: "No index published yet, or the model is unavailable"}
COMMON_ERRORS = (400, 429)
_TYPES = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class Param:
    """One query, path or form parameter; `max_length` may name a Settings attribute (e.g. 'max_query_chars')."""

    name: str
    type: str = "string"
    where: str = "query"  # query | path | form
    required: bool = False
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | str | None = None
    enum: tuple | None = None
    default: Any = None
    repeated: bool = False

    def limit(self) -> int | None:
        if isinstance(self.max_length, str):
            return int(getattr(current_app.config["SHOPLENS"], self.max_length))
        return self.max_length

    def schema(self) -> dict:
        item: dict[str, Any] = {"type": self.type}
        if self.minimum is not None:
            item["minimum"] = self.minimum
        if self.maximum is not None:
            item["maximum"] = self.maximum
        if self.limit() is not None:
            item["maxLength"] = self.limit()
        if self.enum:
            item["enum"] = list(self.enum)
        if self.default is not None and not self.repeated:
            item["default"] = self.default
        return {"type": "array", "items": item} if self.repeated else item

    def parse(self, raw: str) -> Any:
        """Convert and check one raw value; BadInput names the parameter and the rule."""
        limit = self.limit()
        if limit is not None and len(raw) > limit:
            raise BadInput(f"parameter {self.name} is {len(raw)} characters long; the limit is {limit}")
        value: Any = raw
        if self.type == "integer":
            if not re.fullmatch(r"[+-]?\d{1,12}", raw.strip()):
                raise BadInput(f"parameter {self.name} must be an integer, got {raw[:40]!r}")
            value = int(raw)
        elif self.type == "number":
            try:
                value = float(raw)
            except ValueError:
                raise BadInput(f"parameter {self.name} must be a number, got {raw[:40]!r}") from None
            if not math.isfinite(value):
                raise BadInput(f"parameter {self.name} must be a finite number")
        elif self.type == "boolean":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise BadInput(f"parameter {self.name} must be true or false, got {raw[:40]!r}")
            value = lowered in ("true", "1", "yes")
        if self.minimum is not None and value < self.minimum:
            raise BadInput(f"parameter {self.name} must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise BadInput(f"parameter {self.name} must be at most {self.maximum:g}")
        if self.enum and value not in self.enum:
            raise BadInput(f"parameter {self.name} must be one of {', '.join(map(str, self.enum))}")
        return value


def parse_params(params: tuple[Param, ...], source: Mapping, path_values: Mapping | None = None) -> dict:
    """Values of the declared parameters from a MultiDict (args or form) and the URL's path values."""
    out: dict[str, Any] = {}
    for p in params:
        if p.where == "path":
            raw_values = [str((path_values or {})[p.name])]
        else:
            raw_values = [v for v in source.getlist(p.name)] if hasattr(source, "getlist") else []
        if not raw_values:
            if p.required:
                raise BadInput(f"parameter {p.name} is required")
            out[p.name] = [] if p.repeated else p.default
            continue
        if not p.repeated and len(raw_values) > 1:
            raise BadInput(f"parameter {p.name} was given {len(raw_values)} times; give it once")
        parsed = [p.parse(v) for v in raw_values]
        out[p.name] = parsed if p.repeated else parsed[0]
    return out


@dataclass(frozen=True)
class Operation:
    """The OpenAPI description of one view."""

    summary: str
    params: tuple[Param, ...] = ()
    responses: Mapping[int, tuple[str, dict | None]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    form: bool = False  # multipart/form-data body built from the `form` params (+ `files`)
    files: tuple[tuple[str, bool, str], ...] = ()  # (name, required, description) of uploaded files
    tags: tuple[str, ...] = ()
    content_type: str = "application/json"
    description: str = ""

    def to_openapi(self, requires_key: bool) -> dict:
        op: dict[str, Any] = {"summary": self.summary, "operationId": None, "tags": list(self.tags)}
        if self.description:
            op["description"] = self.description
        op["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
             "description": p.description, "schema": p.schema(),
             **({"style": "form", "explode": True} if p.repeated else {})}
            for p in self.params if p.where != "form"]
        if self.form:
            props = {p.name: {**p.schema(), "description": p.description} for p in self.params if p.where == "form"}
            required = [p.name for p in self.params if p.where == "form" and p.required]
            for name, req, desc in self.files:
                props[name] = {"type": "string", "format": "binary", "description": desc}
                if req:
                    required.append(name)
            body = {"type": "object", "properties": props}
            if required:
                body["required"] = required
            op["requestBody"] = {"required": bool(required),
                                 "content": {"multipart/form-data": {"schema": body}}}
        responses: dict[str, Any] = {}
        for status, (text, schema) in self.responses.items():
            content = {self.content_type: {"schema": schema}} if schema is not None else None
            responses[str(status)] = {"description": text, **({"content": content} if content else {})}
        codes = set(COMMON_ERRORS) | set(self.errors) | ({401, 403} if requires_key else set())
        for status in sorted(codes):
            responses[str(status)] = {"description": ERROR_TEXT.get(status, "Error"),
                                      "content": {"application/json": {"schema": ERROR}}}
        op["responses"] = responses
        if requires_key:
            op["security"] = [{"bearerAuth": []}]
        return op


def operation(summary: str, **kwargs) -> Callable:
    """Declare a view's parameters and responses; parsed query/path values land in `flask.g.params`."""
    op = Operation(summary=summary, **kwargs)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kw):
            g.params = parse_params(tuple(p for p in op.params if p.where != "form"), request.args, kw)
            if op.form:
                g.params.update(parse_params(tuple(p for p in op.params if p.where == "form"), request.form))
            return view(*args, **kw)

        wrapper.openapi = op
        return wrapper

    return decorate


_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _named_schemas(node: Any, found: dict[str, dict]) -> dict[str, dict]:
    """Every SchemaRef in `node` (an operation's OpenAPI entry), and those inside their schemas, by name."""
    if isinstance(node, SchemaRef) and node.name not in found:
        found[node.name] = node.schema
        _named_schemas(node.schema, found)
    elif isinstance(node, Mapping):
        for value in node.values():
            _named_schemas(value, found)
    elif isinstance(node, list):
        for value in node:
            _named_schemas(value, found)
    return found


def build_spec(app: Flask, *, title: str = "ShopLens API", version: str = "1") -> dict:
    """The OpenAPI 3.0 document of every view that declared an `operation`, read off the URL map."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        op: Operation | None = getattr(view, "openapi", None)
        if op is None:
            continue
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = op.to_openapi(bool(getattr(view, "requires_api_key", False)))
            entry["operationId"] = f"{rule.endpoint.replace('.', '_')}_{method.lower()}"
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version,
                 "description": "Multimodal product search. Errors are {\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {"schemas": dict(sorted(_named_schemas(paths, {}).items())),
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                          "description": "the server's SHOPLENS_API_KEY"}}},
    }
