"""Search filters: brand, category at any level, gender, colour and a price range.

One parser serves the CLI (`--filter FIELD=VALUE`), the API's query parameters and the web app's links, so all
three accept the same spellings. Several values of one field mean OR; different fields mean AND; text matches
ignore case.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from indexer.errors import BadInput

TEXT_FIELDS = ("brand", "category", "gender", "colour")
FILTER_FIELDS = (*TEXT_FIELDS, "price_min", "price_max")
ALIASES = {"color": "colour", "min_price": "price_min", "max_price": "price_max"}
MAX_VALUE_CHARS = 256


def category_segments(path: str | None) -> tuple[str, ...]:
    """'Apparel > Topwear > Tshirts' -> ('apparel', 'topwear', 'tshirts')."""
    if not path:
        return ()
    return tuple(part.strip().lower() for part in path.split(">") if part.strip())


def category_matches(path: str | None, wanted: str) -> bool:
    """True when `wanted` (one level or a partial path) appears as contiguous levels of `path`."""
    have, want = category_segments(path), category_segments(wanted)
    if not want or len(want) > len(have):
        return False
    return any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


def _price(field: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadInput(f"{field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise BadInput(f"{field} must be a finite number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class Filters:
    """What a result must satisfy besides the query; empty means everything passes."""

    brand: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    gender: tuple[str, ...] = ()
    colour: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> "Filters":
        """Build filters from (field, value) pairs; unknown fields and bad prices raise BadInput."""
        values: dict[str, list[str]] = {f: [] for f in TEXT_FIELDS}
        prices: dict[str, float] = {}
        for raw_field, raw_value in pairs:
            field = ALIASES.get(raw_field.strip().lower(), raw_field.strip().lower())
            value = (raw_value or "").strip()
            if field not in FILTER_FIELDS:
                raise BadInput(f"unknown filter {raw_field!r}", hint=f"use one of: {', '.join(FILTER_FIELDS)}.")
            if not value:
                continue
            if len(value) > MAX_VALUE_CHARS:
                raise BadInput(f"filter {field} is longer than {MAX_VALUE_CHARS} characters")
            if field in TEXT_FIELDS:
                if value not in values[field]:
                    values[field].append(value)
            else:
                prices[field] = _price(field, value)
        lo, hi = prices.get("price_min"), prices.get("price_max")  # lo > hi is allowed: nothing matches
        return cls(**{f: tuple(v) for f, v in values.items()}, price_min=lo, price_max=hi)

    @classmethod
    def parse_cli(cls, items: Iterable[str]) -> "Filters":
        """Parse `FIELD=VALUE` strings as the CLI's --filter takes them."""
        pairs = []
        for item in items:
            field, sep, value = item.partition("=")
            if not sep:
                raise BadInput(f"filter {item!r} is not FIELD=VALUE", hint="e.g. --filter brand=Nike --filter price_max=1500")
            pairs.append((field, value))
        return cls.parse(pairs)

    def is_empty(self) -> bool:
        return self == Filters()

    def pairs(self) -> list[tuple[str, str]]:
        """The filters as (field, value) pairs again, for links and echoing back."""
        out = [(f, v) for f in TEXT_FIELDS for v in getattr(self, f)]
        for f in ("price_min", "price_max"):
            if getattr(self, f) is not None:
                out.append((f, f"{getattr(self, f):g}"))
        return out

    def as_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    def toggled(self, field: str, value: str) -> "Filters":
        """These filters with `value` of a text field added, or removed if it was there (facet clicks)."""
        current = getattr(self, field)
        lowered = [v.lower() for v in current]
        if value.lower() in lowered:
            return replace(self, **{field: tuple(v for v in current if v.lower() != value.lower())})
        return replace(self, **{field: (*current, value)})

    def matches(self, *, brand: str | None, category: str | None, gender: str | None, colour: str | None,
                price: float | None) -> bool:
        """Whether one product passes; a product without a price fails any price bound."""
        for field, have in (("brand", brand), ("gender", gender), ("colour", colour)):
            wanted = getattr(self, field)
            if wanted and (have or "").lower() not in {w.lower() for w in wanted}:
                return False
        if self.category and not any(category_matches(category, w) for w in self.category):
            return False
        if self.price_min is not None or self.price_max is not None:
            if price is None or (isinstance(price, float) and math.isnan(price)):
                return False
            if self.price_min is not None and price < self.price_min:
                return False
            if self.price_max is not None and price > self.price_max:
                return False
        return True
