"""A product's copy facts: what the copy may say, from the database plus what our encoder sees in the image.

Database facts always win. Words printed on the package (read at index time, indexer.reading) become one
labelled fact, "Printed on the package", holding only the catalog's own title and brand words that were read there
("Tropicana", "Golden", "Grapefruit"): a name the grounding check can verify. The rest of the printed text
("12%FETT", "EKOLOGISK") is kept with the facts for the check, never offered as a fact, because nothing in the
catalog confirms what it claims. A visual attribute (read zero-shot: the image vector against text prompts such as
"a photo of a striped tshirt") is used only when its confidence clears a threshold and the database says
nothing about that attribute, so the image can add "striped" but can never contradict "colour: Blue".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from sqlalchemy.orm import Session

from indexer.errors import BadImage, NotFound, ShopLensError
from indexer.product import ProductData
from indexer.reading.stored import printed_lines
from indexer.reading.words import read_catalog_words
from indexer.store import Product

log = logging.getLogger(__name__)

# Attributes that say nothing a shopper cares about (catalog bookkeeping) stay out of the prompt.
HIDDEN_ATTRIBUTES = frozenset({
    "id", "year", "season", "price_inr", "discounted_price_inr", "image_hr_kind", "thumb_60x80", "image_hr",
    "display_categories", "Body or Garment Size", "Business Unit", "Segment", "Brick", "Family", "Class",
    "Processing Time", "taxMaterial", "age_group", "variant_name",
    "store_title", "class_name", "coarse_class", "coarse_class_id", "top_category", "source_description_file",
    "iconic_image_path", "description_raw", "source_image_path", "source_category_folders", "source_image_md5",
})
# Long free-text attributes: grounding evidence, but too long for a 135M model's prompt.
LONG_TEXT_ATTRIBUTES = frozenset({"style_note", "materials_care_desc", "size_fit_desc", "information"})

# Zero-shot attribute groups: (name, database attribute names that already answer it, values, applies-to).
# No material group: a photo does not show what a thing is made of, and reads such as "canvas" or "denim" for a
# cotton bag were the commonest unsupported claims when one was tried.
VISUAL_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("colour", ("colour",), ("black", "white", "blue", "navy blue", "red", "green", "yellow", "pink", "purple",
                            "grey", "brown", "beige", "orange", "maroon", "olive", "silver", "gold"), ()),
    ("pattern", ("Pattern", "Print or Pattern Type"), ("solid", "striped", "checked", "printed", "floral"),
     ("Apparel",)),
    ("sleeve", ("Sleeve Length",), ("sleeveless", "short sleeves", "long sleeves"),
     ("Topwear", "Dress")),
    ("neckline", ("Neck", "Collar"), ("round neck", "v-neck", "collar", "hooded"), ("Topwear",)),
    ("style", ("usage", "Occasion"), ("casual", "formal", "sports", "ethnic", "party"),
     ("Apparel", "Footwear", "Accessories")),  # a shelf is not "formal"
)
DEFAULT_VISUAL_THRESHOLD = 0.9
PRINTED_LABEL = "Printed on the package"


@dataclass(frozen=True)
class VisualAttribute:
    """One attribute read from the image, e.g. pattern = striped at confidence 0.83."""

    name: str
    value: str
    confidence: float


@dataclass(frozen=True)
class CopyFacts(ProductData):
    """Everything the copywriter knows about one product: its catalog data and what was read in its image."""

    visual: list[VisualAttribute] = field(default_factory=list)
    printed: tuple[str, ...] = ()  # the lines read on the product image, as read (indexer.reading.stored)

    @property
    def printed_names(self) -> list[str]:
        """The title and brand words that were read on the package, as the catalog spells them."""
        return read_catalog_words(self.printed, " ".join(filter(None, (self.brand, self.title))))

    @property
    def article_type(self) -> str:
        """The most specific category level ("Tshirts"), else the title."""
        return self.category_leaf or self.title

    def prompt_facts(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the prompt: short, shopper-relevant facts only."""
        pairs = [("Product", self.title), ("Brand", self.brand), ("Category", self.category),
                 ("Colour", self.colour), ("For", self.gender)]
        if self.price is not None:
            pairs.append(("Price", f"{self.price:g} {self.currency or 'INR'}"))
        pairs += [(k, v) for k, v in self.attributes.items()
                  if k not in HIDDEN_ATTRIBUTES and k not in LONG_TEXT_ATTRIBUTES and len(v) <= 60]
        pairs += [(v.name.capitalize(), v.value) for v in self.visual]
        pairs.append((PRINTED_LABEL, ", ".join(self.printed_names)))
        return [(k, str(v)) for k, v in pairs if v not in (None, "")]

    def evidence_text(self) -> str:
        """All text the copy may be grounded in: every fact, long attributes and the source description."""
        parts = [f"{k}: {v}" for k, v in self.prompt_facts()]
        parts += [f"{k}: {v}" for k, v in self.attributes.items() if k in LONG_TEXT_ATTRIBUTES]
        if self.description:
            parts.append(self.description)
        return "\n".join(parts)

    def to_json(self) -> dict:
        return {"product_id": self.id, "facts": dict(self.prompt_facts()),
                "visual": [v.__dict__ for v in self.visual], "printed": list(self.printed)}


def facts_from_product(product: Product, printed: tuple[str, ...] = ()) -> CopyFacts:
    """The database facts of one product (no image reading), with the lines read on its image if given."""
    attributes = {str(k): str(v) for k, v in (product.attributes or {}).items() if v not in (None, "")}
    return CopyFacts.from_record(product, image=product.image_ref, attributes=attributes, printed=printed)


def load_facts(session: Session, product_id: str) -> CopyFacts:
    """The facts of an active product, with the text read on its image; NotFound for an unknown or deleted id."""
    product = session.get(Product, product_id)
    if product is None or product.status != "active":
        raise NotFound(f"product {product_id!r} not found", hint="Check the id with `shoplens search`.")
    printed = printed_lines(session, [product.image_hash]).get(product.image_hash, [])
    return facts_from_product(product, tuple(printed))


class VisualReader:
    """Zero-shot attribute reading with the search encoder; the prompt vectors are encoded once."""

    def __init__(self, encoder, *, threshold: float = DEFAULT_VISUAL_THRESHOLD, max_image_pixels: int = 40_000_000,
                 max_image_bytes: int = 20 * 1024 * 1024, temperature: float = 100.0) -> None:
        from indexer.images import ImageResolver

        self.encoder = encoder
        self.threshold = threshold
        self.temperature = temperature
        self.max_image_pixels = max_image_pixels
        self.resolver = ImageResolver([], max_bytes=max_image_bytes)

    @lru_cache(maxsize=256)
    def _prompt_vectors(self, group: str, noun: str) -> np.ndarray:
        values = next(g[2] for g in VISUAL_GROUPS if g[0] == group)
        return self.encoder.encode_texts([f"a photo of a {value} {noun}" for value in values])

    def image_vector(self, image_ref: str) -> np.ndarray | None:
        """The encoder's vector of a product image, or None (logged) when the image can't be read."""
        from indexer.images import decode_image

        try:
            data, _ = self.resolver.read(image_ref)
            image, _ = decode_image(data, max_pixels=self.max_image_pixels)
        except (BadImage, OSError) as exc:
            log.warning("no visual attributes for image %s: %s", image_ref, exc)
            return None
        return self.encoder.encode_images([image])[0]

    def read(self, facts: CopyFacts, image_vector: np.ndarray) -> list[VisualAttribute]:
        """Visual attributes above the threshold for groups the database leaves open."""
        noun = facts.article_type.lower().rstrip("s") or "product"
        title = set((facts.title or "").lower().replace("/", " ").replace(",", " ").split())
        named = facts.colour or title.intersection(next(g[2] for g in VISUAL_GROUPS if g[0] == "colour"))
        known = {k for k, v in facts.attributes.items() if v} | ({"colour"} if named else set())
        levels = set(p.strip() for p in (facts.category or "").split(">"))
        found = []
        for group, answered_by, values, applies_to in VISUAL_GROUPS:
            if known.intersection(answered_by) or (applies_to and not levels.intersection(applies_to)):
                continue
            logits = self.temperature * (self._prompt_vectors(group, noun) @ image_vector)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            best = int(probs.argmax())
            if probs[best] >= self.threshold:
                found.append(VisualAttribute(group, values[best], round(float(probs[best]), 3)))
        return found

    def enrich(self, facts: CopyFacts) -> CopyFacts:
        """`facts` with the visual attributes read from its image (unchanged when there is no readable image)."""
        vector = self.image_vector(facts.image) if facts.image else None
        return facts if vector is None else replace(facts, visual=self.read(facts, vector))


def visual_reader(settings, *, threshold: float = DEFAULT_VISUAL_THRESHOLD) -> VisualReader | None:
    """A reader with the configured encoder, or None (logged once) when the encoder can't be loaded."""
    from indexer.model.adapted import home_model_spec
    from indexer.model.encoder import load_encoder

    try:
        encoder = load_encoder(home_model_spec(settings), cache_dir=settings.model_cache_dir,
                               runtime=settings.inference)
    except ShopLensError as exc:
        log.warning("visual attributes disabled: %s", exc)
        return None
    return VisualReader(encoder, threshold=threshold, max_image_pixels=settings.max_image_pixels,
                        max_image_bytes=settings.max_image_bytes)
