"""Catalog readers: CSV (header row) or JSON Lines → validated `CatalogRow`s or `RowError`s.

A bad row never stops the read and is never dropped silently: it comes out as a `RowError` with the row number
and a reason (broken quoting, wrong column count, non-UTF-8 bytes, invalid JSON, missing/duplicate id, missing
title, bad price). Column mapping (`--map FIELD=SPEC`) lets a catalog with other column names feed the engine's
fields; every column not used by a mapping is kept as a product attribute.

SPEC grammar (see README "Indexing a catalog"):
  SPEC  := ALT ("," ALT)*      first alternative that renders non-empty wins (e.g. `discounted_price_inr,price_inr`)
  ALT   := PART (">" PART)*    non-empty parts joined as a path "A > B > C" (for `category`)
  PART  := COLUMN | TEMPLATE   TEMPLATE has `{COLUMN}` placeholders and renders only when they are all non-empty
                               (e.g. `thumbs_60x80.zip#{thumb_60x80}`)
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from indexer.errors import BadInput
from indexer.product import FIELDS, ProductData

# Values that mean "no value" in real catalogs (Myntra writes "NA").
EMPTY_VALUES = frozenset({"", "na", "n/a", "null", "none", "nan"})
MAX_ID_CHARS = 128
# A quoted field may span lines, but an unbalanced quote must not swallow the rest of the file: a record that is
# still open after this many physical lines is declared broken and parsing resumes on the next line.
MAX_RECORD_LINES = 200
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_PRICE = re.compile(r"^\d+(\.\d+)?$")


@dataclass(frozen=True, kw_only=True)
class CatalogRow(ProductData):
    """One valid catalog row mapped to the product's fields; `row_number` is 1-based, header excluded."""

    row_number: int

    def text(self) -> str:
        """What the text vector is built from: title, description, then the product's facts as `key: value`."""
        facts = {"brand": self.brand, "category": self.category, "colour": self.colour, "gender": self.gender}
        facts.update(self.attributes)
        fact_text = "; ".join(f"{k}: {v}" for k, v in facts.items() if v not in (None, ""))
        return ". ".join(p for p in (self.title, self.description, fact_text) if p)

    def text_hash(self) -> str:
        return sha256_text(self.text())

    def meta_hash(self) -> str:
        """Hash of every field: a change here without a text/image change is a metadata-only update."""
        fields = {name: getattr(self, name) for name in FIELDS}
        return sha256_text(json.dumps([fields, self.attributes], sort_keys=True, ensure_ascii=False, default=str))


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it was, its id when one could be read, and why."""

    row_number: int
    reason: str
    product_id: str | None = None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in EMPTY_VALUES)


class FieldSpec:
    """A parsed mapping SPEC for one field (grammar in the module docstring)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.alternatives = [[p.strip() for p in alt.split(">")] for alt in spec.split(",")]
        if any(not part for alt in self.alternatives for part in alt):
            raise BadInput(f"bad mapping spec {spec!r}: empty column name", hint="Use e.g. --map category=a>b>c.")

    def columns(self) -> set[str]:
        """Every column the spec reads (so they are not duplicated into attributes)."""
        cols: set[str] = set()
        for alt in self.alternatives:
            for part in alt:
                names = _PLACEHOLDER.findall(part)
                cols.update(names if names else [part])
        return cols

    def render(self, record: dict[str, object]) -> str | None:
        for alt in self.alternatives:
            parts = [p for p in (self._render_part(part, record) for part in alt) if p]
            if parts:
                return " > ".join(parts)
        return None

    @staticmethod
    def _render_part(part: str, record: dict[str, object]) -> str | None:
        names = _PLACEHOLDER.findall(part)
        if not names:
            value = record.get(part)
            return None if _is_empty(value) else str(value).strip()
        values = {n: record.get(n) for n in names}
        if any(_is_empty(v) for v in values.values()):
            return None
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]).strip(), part)


def parse_mapping(items: Iterable[str]) -> dict[str, FieldSpec]:
    """`["image=image_hr,x.zip#{thumb}", ...]` → field → spec; unmapped fields read the column of their own name."""
    mapping = {name: FieldSpec(name) for name in FIELDS}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip()
        if not sep or not spec.strip():
            raise BadInput(f"bad --map {item!r}: expected FIELD=COLUMN", hint="e.g. --map image=image_path")
        if name not in FIELDS:
            raise BadInput(f"bad --map {item!r}: unknown field {name!r}", hint=f"Fields: {', '.join(FIELDS)}.")
        mapping[name] = FieldSpec(spec.strip())
    return mapping


def _decode_line(raw: bytes) -> tuple[str, str | None]:
    """Decode one physical line; on bad bytes return a replacement-decoded line and the reason."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        return raw.decode("utf-8", errors="replace"), f"not valid UTF-8 (byte 0x{bad} at offset {exc.start})"


def _physical_lines(path: Path) -> Iterator[tuple[str, str | None]]:
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield _decode_line(raw)


def _csv_records(path: Path) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield (first line number, fields, error) per CSV record, recovering from broken quoting.

    Lines are gathered until their quote characters balance (RFC 4180 quotes always come in pairs), then parsed
    strictly. A record that fails to parse, or stays open too long, costs only its first physical line: the rest
    is parsed again from the next line.
    """
    lines = _physical_lines(path)
    pending: deque[tuple[int, str, str | None]] = deque()
    line_no = 0
    exhausted = False

    def next_line() -> tuple[int, str, str | None] | None:
        nonlocal line_no, exhausted
        if pending:
            return pending.popleft()
        try:
            text, err = next(lines)
        except StopIteration:
            exhausted = True
            return None
        line_no += 1
        return line_no, text, err

    while True:
        first = next_line()
        if first is None:
            return
        if not first[1].strip():
            continue
        buf = [first]
        while sum(t.count('"') for _, t, _ in buf) % 2 and len(buf) < MAX_RECORD_LINES:
            more = next_line()
            if more is None:
                break
            buf.append(more)
        balanced = sum(t.count('"') for _, t, _ in buf) % 2 == 0
        fields: list[str] | None = None
        error = None
        if balanced:
            try:
                parsed = list(csv.reader(io.StringIO("".join(t for _, t, _ in buf)), strict=True))
                fields = parsed[0] if len(parsed) == 1 else None
                if fields is None:
                    error = "broken quoting: the row does not parse as one CSV record"
            except csv.Error as exc:
                error = f"broken quoting: {exc}"
        else:
            error = "broken quoting: a quoted field is never closed"
        if fields is None:
            # Give back everything after the first line and reject only that line.
            for item in reversed(buf[1:]):
                pending.appendleft(item)
            yield first[0], None, error
            continue
        encoding_error = next((e for _, _, e in buf if e), None)
        yield first[0], (None if encoding_error else fields), encoding_error


def read_csv_records(path: Path) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """(row number, {column: value}, error) per data row of a CSV file with a header row."""
    records = _csv_records(path)
    header_rec = next(records, None)
    if header_rec is None:
        raise BadInput(f"catalog {path} is empty", hint="A CSV catalog needs a header row.")
    _, header, error = header_rec
    if header is None:
        raise BadInput(f"catalog {path}: cannot read the header row ({error})")
    header = [h.strip() for h in header]
    for row_number, (_, fields, error) in enumerate(records, start=1):
        if fields is None:
            yield row_number, None, error
        elif len(fields) != len(header):
            yield row_number, None, f"expected {len(header)} columns, found {len(fields)} (broken quoting?)"
        else:
            yield row_number, dict(zip(header, fields)), None


def read_jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, object] | None, str | None]]:
    """(row number, object, error) per non-blank line of a JSON Lines file."""
    row_number = 0
    for text, error in _physical_lines(path):
        if not text.strip():
            continue
        row_number += 1
        if error:
            yield row_number, None, error
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield row_number, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        if not isinstance(obj, dict):
            yield row_number, None, "invalid JSON Lines row: expected an object"
            continue
        yield row_number, obj, None


def _attributes(record: dict[str, object], used: set[str]) -> dict[str, str]:
    """Unmapped columns as attributes; a column holding a JSON object contributes its entries."""
    attrs: dict[str, str] = {}
    for col, value in record.items():
        if col in used or _is_empty(value):
            continue
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        if isinstance(value, dict):
            attrs.update({str(k): _flat(v) for k, v in value.items() if not _is_empty(v) and _flat(v)})
        else:
            attrs[col] = _flat(value)
    return attrs


def _flat(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if not _is_empty(v))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value).strip()


def parse_price(value: str | None) -> float | None:
    """A non-negative decimal number (thousands separators allowed); raises ValueError otherwise."""
    if value is None:
        return None
    text = value.replace(",", "").strip()
    if not _PRICE.match(text):
        raise ValueError(f"bad price {value!r}: expected a non-negative number like 1299 or 12.50")
    price = float(text)
    if not math.isfinite(price):
        raise ValueError(f"bad price {value!r}")
    return price


def to_row(row_number: int, record: dict[str, object], mapping: dict[str, FieldSpec],
           used: set[str]) -> CatalogRow | RowError:
    """Map and validate one record."""
    values = {name: spec.render(record) for name, spec in mapping.items()}
    product_id = values["id"]
    if not product_id:
        return RowError(row_number, f"missing id (column {mapping['id'].spec!r} is empty)")
    if len(product_id) > MAX_ID_CHARS:
        return RowError(row_number, f"id longer than {MAX_ID_CHARS} characters", product_id[:MAX_ID_CHARS])
    if not values["title"]:
        return RowError(row_number, f"missing title (column {mapping['title'].spec!r} is empty)", product_id)
    try:
        price = parse_price(values["price"])
    except ValueError as exc:
        return RowError(row_number, str(exc), product_id)
    return CatalogRow(row_number=row_number, **{**values, "price": price}, attributes=_attributes(record, used))


def read_catalog(path: str | Path, mapping: dict[str, FieldSpec] | None = None) -> Iterator[CatalogRow | RowError]:
    """Every row of a CSV or JSON Lines catalog, validated; the second row with an id already seen is rejected."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"catalog {path} not found", hint="Give the path of a .csv or .jsonl file.")
    mapping = mapping or parse_mapping([])
    used = set().union(*(spec.columns() for spec in mapping.values()))
    is_jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    records = read_jsonl_records(path) if is_jsonl else read_csv_records(path)
    seen: dict[str, int] = {}
    for row_number, record, error in records:
        if record is None:
            yield RowError(row_number, error or "unreadable row")
            continue
        row = to_row(row_number, record, mapping, used)
        if isinstance(row, CatalogRow):
            if row.id in seen:
                row = RowError(row_number, f"duplicate id {row.id!r} (first seen on row {seen[row.id]})", row.id)
            else:
                seen[row.id] = row_number
        yield row
