"""The product schema: a product's fields, named once.

`ProductSummary` is what a result card shows and filters read: id, title, brand, category path, colour, gender,
price and currency. `ProductData` adds what only the full record carries: the description, the image reference and
the attributes (every other catalog column). The catalog row (`indexer.catalog.CatalogRow`), search's result card
(`search.products.ProductCard`) and the copywriter's facts (`web.copywriter.facts.CopyFacts`) derive from these, and
code that moves a product between forms (a catalog row into the store's row, a store row into a card) goes by
`FIELDS`, `STORED_FIELDS` and `from_record` instead of naming the fields again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Self


def category_leaf(category: str | None) -> str | None:
    """The deepest level of a category path ("Apparel > Topwear > Tshirts" -> "Tshirts")."""
    if not category:
        return None
    return category.split(">")[-1].strip() or None


@dataclass(frozen=True)
class ProductSummary:
    """A product as a result card shows it and filters see it."""

    id: str
    title: str
    brand: str | None = None
    category: str | None = None  # a path "Apparel > Topwear > Tshirts", or a single level
    colour: str | None = None
    gender: str | None = None
    price: float | None = None
    currency: str | None = None

    @property
    def category_leaf(self) -> str | None:
        """The deepest category level ("Tshirts"): the product's type, for facets, suggestions and copy."""
        return category_leaf(self.category)

    @classmethod
    def from_record(cls, record: object, **values: Any) -> Self:
        """An instance whose fields not given in `values` are read from `record`'s attributes of the same name
        (a catalog row, the store's row); a field `record` has no attribute for keeps its default."""
        for f in fields(cls):
            if f.init and f.name not in values and hasattr(record, f.name):
                values[f.name] = getattr(record, f.name)
        return cls(**values)


@dataclass(frozen=True)
class ProductData(ProductSummary):
    """Everything the catalog says about a product."""

    description: str | None = None
    image: str | None = None  # where the image is: a path, or ARCHIVE.zip#MEMBER
    attributes: dict[str, str] = field(default_factory=dict)  # every catalog column no field is mapped from


# The fields a catalog's columns map to (`--map FIELD=COLUMN`, interfaces.md); other columns become attributes.
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ProductData) if f.name != "attributes")
# What the store's products row keeps as the catalog gave it (`id` is its primary key; the image is kept resolved,
# as `image_ref`).
STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ProductData) if f.name not in ("id", "image"))

